# The emulated CUDA device (cuda/emu/README.md): the .cu sources of cuda/ compiled by the host C++
# compiler and run on the CPU, so that CUDA code is executed and tested on machines without a GPU.
# Included by the top-level CMakeLists.txt after its targets and its test block. Provides:
#   charrnn_cuda_emu                                  the emulator runtime (static library), with the
#                                                     NCCL subset over MPI where the project found MPI
#                                                     (CHARRNN_HAVE_MPI; then CHARRNN_EMU_NCCL is ON)
#   charrnn_add_emulated_cuda_sources(target a.cu ...)  compiles .cu files into `target` for it
#   emu_kernels, emu_runtime, emu_cublas              its Criterion tests (with CHARRNN_TESTS)
#   emu_nvcc_check                                    the test kernels compiled by nvcc for sm_90,
#                                                     when nvcc is found (compile-only)
option(CHARRNN_CUDA_EMU "Build the emulated CUDA device (CUDA code run on the CPU) and its tests" ON)
if(NOT CHARRNN_CUDA_EMU)
  return()
endif()

enable_language(CXX)
set(CHARRNN_EMU_DIR "${CMAKE_CURRENT_LIST_DIR}")
get_filename_component(CHARRNN_EMU_TESTS "${CMAKE_CURRENT_LIST_DIR}/../../tests/emu" ABSOLUTE)

find_package(Threads REQUIRED)

# The registers, stack and static shared memory of every kernel in the sm_90 build, for occupancy and
# co-residency (emu_resources.cpp): generated from nvcc --resource-usage when nvcc is installed, else
# the copy committed as sm90_resources.inc, which the test emu_resources_committed keeps current.
set(CHARRNN_EMU_KERNEL_SOURCES "${CMAKE_CURRENT_LIST_DIR}/../kernels.cu" "${CHARRNN_EMU_TESTS}/kernels.cu")
set(CHARRNN_EMU_RESOURCES "${CHARRNN_EMU_DIR}/sm90_resources.inc")
include(CheckLanguage)
check_language(CUDA)
if(CMAKE_CUDA_COMPILER)
  set(CHARRNN_EMU_RESOURCES "${CMAKE_BINARY_DIR}/emu/sm90_resources.inc")
  string(REPLACE ";" "|" charrnn_emu_sources "${CHARRNN_EMU_KERNEL_SOURCES}") # one command-line argument
  file(GLOB charrnn_emu_headers "${CMAKE_CURRENT_LIST_DIR}/../*.cuh" "${CHARRNN_EMU_DIR}/charrnn_cuda.h"
       "${CHARRNN_EMU_TESTS}/*.h")
  # The table is rewritten only when it changes (so that a rebuild recompiles only what it affects);
  # the stamp records that it is up to date.
  add_custom_command(OUTPUT "${CMAKE_BINARY_DIR}/emu/sm90_resources.stamp"
    BYPRODUCTS "${CHARRNN_EMU_RESOURCES}"
    COMMAND ${CMAKE_COMMAND} -E make_directory "${CMAKE_BINARY_DIR}/emu"
    COMMAND ${CMAKE_COMMAND} "-DNVCC=${CMAKE_CUDA_COMPILER}" "-DSOURCES=${charrnn_emu_sources}"
            "-DINCLUDES=${CHARRNN_EMU_DIR}|${CHARRNN_EMU_TESTS}" "-DOUTPUT=${CHARRNN_EMU_RESOURCES}"
            -P "${CHARRNN_EMU_DIR}/resources.cmake"
    COMMAND ${CMAKE_COMMAND} -E touch "${CMAKE_BINARY_DIR}/emu/sm90_resources.stamp"
    DEPENDS ${CHARRNN_EMU_KERNEL_SOURCES} ${charrnn_emu_headers} "${CHARRNN_EMU_DIR}/resources.cmake"
    COMMENT "Kernel resources of the sm_90 build (nvcc --resource-usage)" VERBATIM)
  message(STATUS "charrnn: emulated device: kernel resources from nvcc --resource-usage")
else()
  message(STATUS "charrnn: emulated device: kernel resources from the committed ${CHARRNN_EMU_RESOURCES}")
endif()

add_library(charrnn_cuda_emu STATIC
  ${CHARRNN_EMU_DIR}/emu_scheduler.cpp ${CHARRNN_EMU_DIR}/emu_runtime.cpp ${CHARRNN_EMU_DIR}/emu_cublas.cpp
  ${CHARRNN_EMU_DIR}/emu_resources.cpp ${CHARRNN_EMU_DIR}/emu_racecheck.cpp)
if(CMAKE_CUDA_COMPILER)
  target_sources(charrnn_cuda_emu PRIVATE "${CMAKE_BINARY_DIR}/emu/sm90_resources.stamp")
  set_source_files_properties("${CHARRNN_EMU_DIR}/emu_resources.cpp" PROPERTIES
    OBJECT_DEPENDS "${CMAKE_BINARY_DIR}/emu/sm90_resources.stamp")
endif()
get_filename_component(charrnn_emu_resources_dir "${CHARRNN_EMU_RESOURCES}" DIRECTORY)
target_include_directories(charrnn_cuda_emu PUBLIC ${CHARRNN_EMU_DIR})
target_include_directories(charrnn_cuda_emu BEFORE PRIVATE "${charrnn_emu_resources_dir}")
target_compile_features(charrnn_cuda_emu PUBLIC cxx_std_17)
set_target_properties(charrnn_cuda_emu PROPERTIES CXX_EXTENSIONS OFF)
set(CHARRNN_EMU_NCCL OFF)
if(CHARRNN_HAVE_MPI)
  target_sources(charrnn_cuda_emu PRIVATE ${CHARRNN_EMU_DIR}/emu_nccl.cpp)
  target_link_libraries(charrnn_cuda_emu PUBLIC MPI::MPI_C)
  set(CHARRNN_EMU_NCCL ON)
endif()
# Kernels are found by their symbol names (dladdr), which the program must export.
target_link_libraries(charrnn_cuda_emu PUBLIC Threads::Threads ${CMAKE_DL_LIBS} -rdynamic)

# The shared-memory race detector (emu_racecheck.cpp) sees every memory access of the emulated .cu
# code through the thread sanitizer's instrumentation, without its runtime: the emulator supplies the
# __tsan_* callbacks. Not with AddressSanitizer, which the sanitizer builds use instead.
option(CHARRNN_EMU_RACECHECK "Instrument the emulated .cu code for the shared-memory race detector" ON)
set(CHARRNN_EMU_RACECHECK_FLAGS "")
if(CHARRNN_EMU_RACECHECK AND NOT "${CMAKE_CXX_FLAGS} ${CMAKE_C_FLAGS}" MATCHES "sanitize=[a-z,]*address")
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    set(CHARRNN_EMU_RACECHECK_FLAGS -fsanitize=thread --param=tsan-instrument-func-entry-exit=0)
  elseif(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    set(CHARRNN_EMU_RACECHECK_FLAGS -fsanitize=thread -fsanitize-thread-func-entry-exit=0)
  endif()
endif()
if(CHARRNN_EMU_RACECHECK_FLAGS)
  target_compile_definitions(charrnn_cuda_emu PRIVATE CHARRNN_EMU_RACECHECK_BUILT)
  message(STATUS "charrnn: emulated device: shared-memory race detector built in")
else()
  message(STATUS "charrnn: emulated device: shared-memory race detector not built (AddressSanitizer build)")
endif()

# Each .cu file is compiled through a generated one-line C++ file that #includes it, so the .cu keeps
# its CUDA language in any target that builds it with nvcc, and diagnostics point into the .cu.
# Links `target` to the emulator with the keyword signature (PUBLIC).
function(charrnn_add_emulated_cuda_sources target)
  foreach(source IN LISTS ARGN)
    get_filename_component(absolute "${source}" ABSOLUTE)
    file(RELATIVE_PATH relative "${CMAKE_SOURCE_DIR}" "${absolute}")
    set(wrapper "${CMAKE_BINARY_DIR}/charrnn_emu_sources/${target}/${relative}.cpp")
    file(CONFIGURE OUTPUT "${wrapper}"
      CONTENT "/* Generated by cuda/emu/emu.cmake: ${relative} for the emulated CUDA device. */\n#include \"${absolute}\"\n")
    target_sources(${target} PRIVATE "${wrapper}")
    # `#pragma unroll` is for nvcc; the host compiler ignores it, without a warning.
    set_source_files_properties("${wrapper}" PROPERTIES COMPILE_OPTIONS "-Wno-unknown-pragmas;${CHARRNN_EMU_RACECHECK_FLAGS}")
  endforeach()
  target_link_libraries(${target} PUBLIC charrnn_cuda_emu)
endfunction()

# Its tests use the top-level charrnn::criterion target (defined before this file is included).
if(CHARRNN_TESTS)
  if(NOT TARGET charrnn::criterion)
    message(WARNING "charrnn: Criterion not found; the emulated CUDA device tests are not built")
  else()
    enable_testing()
    add_library(emu_test_kernels STATIC)
    charrnn_add_emulated_cuda_sources(emu_test_kernels ${CHARRNN_EMU_TESTS}/kernels.cu)
    target_include_directories(emu_test_kernels PUBLIC ${CHARRNN_EMU_TESTS})
    foreach(name kernels runtime cublas)
      add_executable(test_emu_${name} ${CHARRNN_EMU_TESTS}/test_emu_${name}.cpp)
      target_link_libraries(test_emu_${name} PRIVATE emu_test_kernels charrnn::criterion)
      add_test(NAME emu_${name} COMMAND test_emu_${name} --jobs 2)
      set_tests_properties(emu_${name} PROPERTIES ENVIRONMENT CHARRNN_EMU_RACECHECK=1)
    endforeach()
    if(CMAKE_CUDA_COMPILER)
      # The committed table must be what nvcc reports now, so that builds without nvcc plan alike.
      add_test(NAME emu_resources_committed
        COMMAND ${CMAKE_COMMAND} "-DCOMPARE=${CHARRNN_EMU_DIR}/sm90_resources.inc" "-DOUTPUT=${CHARRNN_EMU_RESOURCES}"
                -P "${CHARRNN_EMU_DIR}/resources.cmake")
    endif()
  endif()
endif()

# The same test kernels through nvcc for sm_90: proof that what the emulator runs is valid CUDA.
option(CHARRNN_EMU_NVCC_CHECK "Also compile the emulator's test kernels with nvcc, when it is installed" ON)
if(CHARRNN_EMU_NVCC_CHECK AND CHARRNN_CUDA)
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    enable_language(CUDA)
    add_library(emu_nvcc_check OBJECT ${CHARRNN_EMU_TESTS}/kernels.cu)
    # The directory's warning flags are for gcc; nvcc takes host-compiler flags through -Xcompiler.
    set_target_properties(emu_nvcc_check PROPERTIES
      CUDA_ARCHITECTURES 90 CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON COMPILE_OPTIONS "-Xcompiler=-Wall")
    target_include_directories(emu_nvcc_check PRIVATE ${CHARRNN_EMU_DIR} ${CHARRNN_EMU_TESTS})
  else()
    message(STATUS "charrnn: nvcc not found; the emulated test kernels are not also compiled as CUDA")
  endif()
endif()

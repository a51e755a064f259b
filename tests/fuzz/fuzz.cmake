# libFuzzer targets (tests/fuzz/): the checkpoint reader, the UTF-8 decoder and vocabulary, and the
# option parser. Included by the top-level CMakeLists.txt when CHARRNN_FUZZ is ON; needs clang.
# Provides:
#   charrnn_fuzz_common                           the common sources they need, instrumented for
#                                                 libFuzzer, AddressSanitizer and UBSan
#   fuzz_checkpoint, fuzz_utf8, fuzz_dataset,
#   fuzz_options                                  the fuzzers (run them with tests/fuzz/run.sh)
#   fuzz_make_seeds                               writes the checkpoint seed corpus
#   fuzzers                                       builds all of the above
if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "charrnn: CHARRNN_FUZZ needs clang as the C compiler (libFuzzer); "
                      "configure a separate build directory with CC=clang, as tests/fuzz/run.sh does")
endif()

set(CHARRNN_FUZZ_DIR "${CMAKE_CURRENT_LIST_DIR}")
get_filename_component(CHARRNN_FUZZ_ROOT "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)
# Debug information and assertions whatever the build type; these come after its -O3 -DNDEBUG.
set(CHARRNN_FUZZ_FLAGS -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
    -g -O1 -UNDEBUG)

# Its own copy of the common code, instrumented; the normal charrnn_common is not.
add_library(charrnn_fuzz_common STATIC)
target_sources(charrnn_fuzz_common PRIVATE
  ${CHARRNN_FUZZ_ROOT}/common/util.c ${CHARRNN_FUZZ_ROOT}/common/vocab.c ${CHARRNN_FUZZ_ROOT}/common/data.c
  ${CHARRNN_FUZZ_ROOT}/common/model.c ${CHARRNN_FUZZ_ROOT}/common/optim.c ${CHARRNN_FUZZ_ROOT}/common/config.c
  ${CHARRNN_FUZZ_ROOT}/common/checkpoint.c ${CHARRNN_FUZZ_ROOT}/common/options.c ${CHARRNN_FUZZ_ROOT}/common/memory.c)
target_include_directories(charrnn_fuzz_common PUBLIC ${CHARRNN_FUZZ_ROOT}/common)
target_compile_options(charrnn_fuzz_common PUBLIC ${CHARRNN_FUZZ_FLAGS})
target_link_libraries(charrnn_fuzz_common PUBLIC m)

add_custom_target(fuzzers)
foreach(name checkpoint utf8 dataset options)
  add_executable(fuzz_${name} ${CHARRNN_FUZZ_DIR}/fuzz_${name}.c)
  target_link_libraries(fuzz_${name} PRIVATE charrnn_fuzz_common)
  # libFuzzer supplies main().
  target_link_options(fuzz_${name} PRIVATE -fsanitize=fuzzer,address,undefined)
  add_dependencies(fuzzers fuzz_${name})
endforeach()

# A plain program (its own main) built against the same library: fuzzer-no-link brings the coverage
# runtime without libFuzzer's main.
add_executable(fuzz_make_seeds ${CHARRNN_FUZZ_DIR}/make_seeds.c)
target_link_libraries(fuzz_make_seeds PRIVATE charrnn_fuzz_common)
target_link_options(fuzz_make_seeds PRIVATE -fsanitize=fuzzer-no-link,address,undefined)
add_dependencies(fuzzers fuzz_make_seeds)

# Tests that run threads (thread pool, server batcher, lazily loaded tokenizer, weight prefetch, parallel decode,
# concurrent encode / cache / store access): labelled `threads`, the subset scripts/test.sh runs under
# ThreadSanitizer (ctest -L threads); the target zeroshot_thread_tests builds just them. A new test that starts
# threads belongs here. (Not every test can be built under TSan: image_test and audio_decode_test replace the global
# operator new, which clang's static TSan runtime also defines.)
set(ZEROSHOT_THREAD_TESTS
  nn_ops_test nn_linear_test nn_audio_ops_test text_clip_tokenizer_test text_roberta_tokenizer_test
  models_clip_test models_clap_test clap_feature_extractor_test label_cache_test index_store_test io_hub_test
  api_parity_test server_unit_test server_test server_abuse_test)
add_custom_target(zeroshot_thread_tests)

# zeroshot_add_test(NAME SOURCES src... LIBS libs... [FIXTURES setup...]): a GoogleTest binary that knows where the
# fixtures are, linked with the shared test support (tests/support: CLI runner, TempDir, TempModel, comparisons).
# FIXTURES: CTest fixture-setup tests it needs (e.g. reference_fixtures, which writes <build>/reference-fixtures);
# CTest runs them first, also under -R.
function(zeroshot_add_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS;FIXTURES" ${ARGN})
  # isolated_cache.cpp: the test's $XDG_CACHE_HOME is a temporary folder, never the user's ~/.cache.
  add_executable(${name} ${T_SOURCES} ${CMAKE_SOURCE_DIR}/tests/support/isolated_cache.cpp)
  target_link_libraries(${name} PRIVATE ${T_LIBS} zs_test_support GTest::gtest GTest::gtest_main)
  target_compile_definitions(${name} PRIVATE
    ZEROSHOT_FIXTURES="${ZEROSHOT_FIXTURES}" ZEROSHOT_SHARED="${ZEROSHOT_SHARED}"
    ZEROSHOT_SOURCE_DIR="${CMAKE_SOURCE_DIR}" ZEROSHOT_BINARY_DIR="${CMAKE_BINARY_DIR}")
  set(labels "")
  if(name IN_LIST ZEROSHOT_THREAD_TESTS)
    set(labels LABELS threads)
    add_dependencies(zeroshot_thread_tests ${name})
  endif()
  if(T_FIXTURES)
    gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 600 FIXTURES_REQUIRED "${T_FIXTURES}" ${labels})
  else()
    gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 600 ${labels})
  endif()
endfunction()

# zeroshot_add_test(NAME SOURCES src... LIBS libs... [FIXTURES setup...]): a GoogleTest binary that knows where the
# fixtures are, linked with the shared test support (tests/support: CLI runner, TempDir, TempModel, comparisons).
# FIXTURES: CTest fixture-setup tests it needs (e.g. reference_fixtures, which writes <build>/reference-fixtures);
# CTest runs them first, also under -R.
function(zeroshot_add_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS;FIXTURES" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} zs_test_support GTest::gtest GTest::gtest_main)
  target_compile_definitions(${name} PRIVATE
    ZEROSHOT_FIXTURES="${ZEROSHOT_FIXTURES}" ZEROSHOT_SHARED="${ZEROSHOT_SHARED}"
    ZEROSHOT_SOURCE_DIR="${CMAKE_SOURCE_DIR}" ZEROSHOT_BINARY_DIR="${CMAKE_BINARY_DIR}")
  if(T_FIXTURES)
    gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 600 FIXTURES_REQUIRED "${T_FIXTURES}")
  else()
    gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 600)
  endif()
endfunction()

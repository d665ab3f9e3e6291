// Kept for the tests that include it by this name: the fixture paths and comparisons now live in tests/support.
#pragma once

#include "support/compare.h"
#include "support/fixtures.h"

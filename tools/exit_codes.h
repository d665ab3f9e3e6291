// The exit codes of every zeroshot command: one rule, so that a script can tell "done", "done but some inputs could
// not be read" and "nothing done" apart without knowing the command.
//
//   0    everything asked for was done.
//   1    some inputs could not be read (each named on stderr, and in JSON output where the command has one); the
//        output covers the rest. `moderate` alone: 1 means something was flagged, as diff and linters do, and an
//        unreadable image is 2 there, so that it can never pass for "nothing flagged".
//   2    an error before or instead of the output: a bad option or argument (usage), a model, database, policy or
//        file that cannot be used. The message is one line on stderr.
//   130  interrupted (Ctrl-C): what was finished is kept (index, search, dedup).
#pragma once

namespace zeroshot::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitSomeInputsFailed = 1;
inline constexpr int kExitError = 2;
inline constexpr int kExitInterrupted = 130;

// The rule as `zeroshot --help` prints it.
inline constexpr const char* kExitCodesHelp =
    "Exit codes: 0 done; 1 some inputs could not be read (named on stderr), the output covers the rest;\n"
    "2 error (bad option, model, database, policy...), nothing done; 130 interrupted. moderate: 1 something\n"
    "flagged, 2 also for an unreadable image.";

}  // namespace zeroshot::cli

// zeroshot index-embeddings: a FAISS index over what zeroshot.inference (or clip-retrieval) embedded, for
// `zeroshot search --embeddings` and `zeroshot serve --embeddings`.
//
// The build is Python's (python3 -m zeroshot.embeddings index), by design: the metadata are Parquet files and
// Debian 12 has no C++ Parquet reader, so this step needs Python (pyarrow) anyway; running the whole step there
// keeps one implementation of the index choice (autofaiss's rule, zeroshot.embeddings.choose_index), so the CLI and
// the Python API write the same index for the same folder, and FAISS's Python module does the work at C++ speed.
// That step also writes the metadata store the C++ side reads (index/embeddings.h). This command checks the
// partitions first (strict .npy headers), runs the step, then opens the result as search will.
#include <spawn.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "commands.h"
#include "exit_codes.h"
#include "index/embeddings.h"
#include "index/npy.h"
#include "zeroshot/error.h"

extern char** environ;  // NOLINT(readability-redundant-declaration): POSIX declares it nowhere in a header

namespace zeroshot::cli {

namespace {

struct IndexEmbeddingsArgs {
  std::string out, index, memory_budget = "4G", python;
  size_t exact_below = 100000;
  bool quiet = false;
};

// Runs argv (argv[0] looked up in PATH) with this process's stdin/out/err; its exit status, or -1 when it could not
// be started, or 128 + the signal that ended it.
int run_process(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (const auto& s : args) argv.push_back(const_cast<char*>(s.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (::posix_spawnp(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) return -1;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 1;
}

// What the Python step imports, with what to install when it is missing; the probe exits 10 + its position.
struct Needed {
  const char* module;
  const char* install;
};
constexpr Needed kNeeded[] = {
    {"zeroshot.embeddings",
     "the zeroshot Python package (pip install . in the repository, or --python PYTHON "
     "naming an interpreter that has it)"},
    {"numpy", "numpy (Debian python3-numpy, or pip install numpy)"},
    {"faiss", "FAISS's Python module (Debian python3-faiss, or pip install faiss-cpu)"},
    {"pyarrow.parquet", "pyarrow, to read metadata/*.parquet (pip install pyarrow)"},
};

void check_python(const std::string& python) {
  std::string probe = "import importlib, sys\nfor i, m in enumerate([";
  for (const auto& n : kNeeded) probe += std::string("'") + n.module + "', ";
  probe += "]):\n  try:\n    importlib.import_module(m)\n  except ImportError:\n    sys.exit(10 + i)\n";
  const int rc = run_process({python, "-c", probe});
  if (rc == -1 || rc == 127)
    throw Error(python,
                "cannot run it: index-embeddings runs its Python step (zeroshot.embeddings) with it; "
                "--python or ZEROSHOT_PYTHON names another interpreter");
  const int missing = rc - 10;
  if (missing >= 0 && missing < static_cast<int>(std::size(kNeeded)))
    throw Error(python,
                std::string("cannot import ") + kNeeded[missing].module + ": install " + kNeeded[missing].install);
  if (rc != 0) throw Error(python, "the import check failed (exit " + std::to_string(rc) + ")");
}

int run(const IndexEmbeddingsArgs& a) {
  for (const auto& f : index::embedding_partitions(a.out)) index::read_npy_header(f);  // fail here, in one line
  std::string python = a.python;
  if (python.empty()) python = std::getenv("ZEROSHOT_PYTHON") ? std::getenv("ZEROSHOT_PYTHON") : "python3";
  check_python(python);
  std::vector<std::string> cmd = {python,
                                  "-m",
                                  "zeroshot.embeddings",
                                  "index",
                                  a.out,
                                  "--memory-budget",
                                  a.memory_budget,
                                  "--exact-below",
                                  std::to_string(a.exact_below)};
  if (!a.index.empty()) cmd.insert(cmd.end(), {"--index", a.index});
  const int rc = run_process(cmd);
  if (rc != 0) return kExitError;  // the step printed its one-line error
  const auto e = index::EmbeddingsIndex::open(a.out, a.index);
  if (!a.quiet)
    std::fprintf(stderr, "zeroshot: %s index of %zu embeddings (dim %zu) ready for search --embeddings %s\n",
                 e.index_type().c_str(), e.size(), e.dim(), a.out.c_str());
  return kExitOk;
}

}  // namespace

void add_index_embeddings_command(CLI::App& app, std::function<int()>* action) {
  auto a = std::make_shared<IndexEmbeddingsArgs>();
  CLI::App* c = app.add_subcommand(
      "index-embeddings", "Build a FAISS index over an embedding folder (zeroshot.inference's or clip-retrieval's)");
  c->add_option("output", a->out, "The folder: OUT/img_emb/img_emb_{i}.npy and OUT/metadata/metadata_{i}.parquet")
      ->required();
  c->add_option("--index", a->index, "Where to write the index (default OUT/index.faiss)");
  c->add_option("--memory-budget", a->memory_budget, "Memory the index may use (e.g. 512M, 4G): chooses its type")
      ->default_val("4G");
  c->add_option("--exact-below", a->exact_below, "An exact (Flat) index up to this many vectors")->default_val(100000);
  c->add_option("--python", a->python,
                "The Python interpreter of the build step (default $ZEROSHOT_PYTHON, else python3 from PATH)");
  c->add_flag("-q,--quiet", a->quiet, "No notes");
  c->footer(
      "Writes OUT/index.faiss (the index autofaiss and clip-retrieval's back end read, inner product, ids = rows of\n"
      "the partitions in order) and OUT/index.metadata.sqlite (the metadata rows in index order, for search and\n"
      "serve --embeddings). Up to --exact-below vectors: Flat (exact); more: IVF-Flat when the float32 vectors fit\n"
      "the budget, else IVF-PQ. The build runs in Python (zeroshot.embeddings; needs numpy, faiss and pyarrow),\n"
      "which reads the Parquet metadata; a JSON summary is printed on stdout.");
  c->callback([a, action] { *action = [a] { return run(*a); }; });
}

}  // namespace zeroshot::cli

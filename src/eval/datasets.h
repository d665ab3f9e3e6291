// Labeled data sets for `zeroshot eval`: four on-disk layouts read into one plain form (files + class indices).
//
// Layouts (Layout::Auto picks one from what `path` is):
//   Folder    a folder with one sub-folder per class holding that class's images, searched recursively
//             (torchvision's ImageFolder: classes are the sub-folder names, sorted; top-level files are ignored).
//   Csv       a .csv / .tsv / .txt file of rows `path,label[,label...]` (tab-separated for .tsv, or when the first
//             line has a tab); paths are relative to the file's folder unless absolute; "double quotes" may wrap a
//             field (RFC 4180); a first row whose first field is path/file/filename/image is a header. A row with
//             several labels makes the data set multi-label. Blank lines and lines starting with # are skipped.
//   Filename  a folder of images named `<prefix>_<class>.<ext>`, e.g. imagenet-samples' `n01440764_tench.JPEG`.
//             The class is the part after the first underscore; when every prefix is a WordNet id (n + 8 digits)
//             or a class map is given, the prefix is the class id instead (ImageNet has two different "crane"s).
//   Esc50     the ESC-50 layout: audio/*.wav + meta/esc50.csv with columns filename, fold, target, category;
//             classes are the categories in target order; `fold` keeps one fold (1-5), 0 all (audio inputs).
//
// Class names: folder, file-name and ESC-50 names have '_' replaced by ' ' (the id keeps the raw text). A class map
// file renames ids: lines `id<TAB or , or space>name`, or a JSON object {"id": "name"} or ImageNet's
// {"0": ["n01440764", "tench"], ...}. Then `classes` (e.g. --labels imagenet, synonyms allowed) override names:
// when every class's name or id is one of the given names, classes are matched by name and the given list becomes
// the class list (extra names act as distractors); else, when the counts are equal, they rename positionally (the
// built-in imagenet names are in ImageNet index order = sorted wnids); else it is an error. For CSV files with given
// classes, labels must be given names, ids, or 0-based indices into them.
//
// Errors (zeroshot::Error, one line naming the file or row): a missing path, an empty class folder, a folder
// without images, a CSV row without a label or naming a file that does not exist, an unknown label, a file name
// without '_', an id missing from the class map, inconsistent ESC-50 rows. Unreadable images are found later,
// when they are embedded. Sizes are bounded: at most 10 million rows and 1 million classes.
#pragma once

#include <string>
#include <vector>

namespace zeroshot::eval {

enum class Layout { Auto, Folder, Csv, Filename, Esc50 };

const char* layout_name(Layout l);             // "folder", "csv", "filename", "esc50"
Layout parse_layout(const std::string& name);  // "auto" included; throws on an unknown name

struct Class {
  std::string id;                  // as the data names it: folder name, file-name class, CSV label, ESC-50 target
  std::vector<std::string> names;  // names[0] is shown; every name is put in the prompts (synonyms)
};

struct Sample {
  std::string path;
  std::vector<int> labels;  // class indices; exactly one unless the data set is multi-label
  int fold = 0;             // ESC-50 fold; 0 when the layout has none
};

struct Dataset {
  std::string source;  // the path given
  Layout layout = Layout::Auto;
  std::string modality = "image";  // "image" or "audio" (ESC-50)
  std::vector<Class> classes;
  std::vector<Sample> samples;
  bool multi_label = false;
  std::vector<std::string> warnings;  // e.g. two classes with the same name (identical prompts)
};

struct ReadOptions {
  Layout layout = Layout::Auto;
  std::string class_map;                          // file: id -> name ("" none)
  std::vector<std::vector<std::string>> classes;  // given class names (empty: the data's own)
  int fold = 0;                                   // ESC-50: keep this fold only (1..5); 0 all
};

Dataset read_dataset(const std::string& path, const ReadOptions& opt = {});

// The layout Auto resolves to: a CSV/TSV/TXT file -> Csv; a folder with meta/esc50.csv -> Esc50; a folder with
// sub-folders -> Folder; a folder of image files -> Filename. Throws when none fits.
Layout detect_layout(const std::string& path);

// Reads a class map file (see above) into (id, name) pairs in file order.
std::vector<std::pair<std::string, std::string>> read_class_map(const std::string& path);

}  // namespace zeroshot::eval

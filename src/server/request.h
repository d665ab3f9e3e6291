// Request bodies of the JSON API, parsed and checked against the limits before any model work. Two encodings:
// a JSON object, or multipart/form-data (files + text fields). docs/api.md has every field.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace zeroshot::server {

// An error answered with `status` and {"error": message}.
struct HttpError : std::runtime_error {
  HttpError(int s, const std::string& message) : std::runtime_error(message), status(s) {}
  int status;
};

struct Part {  // one multipart/form-data part
  std::string name, filename, content_type, content;
};

struct Body {
  bool multipart = false;
  const std::string* json = nullptr;  // !multipart
  std::vector<Part> parts;            // multipart
};

struct Limits {
  size_t max_labels = 1000;
  size_t max_label_bytes = 1000;
  size_t max_templates = 100;
  size_t max_texts = 256;
  size_t max_images = 32;
};

struct ImageInput {
  std::vector<uint8_t> bytes;
  std::string name;  // for error messages: the upload's file name, or "image" / "images[2]"
};

struct ClassifyRequest {
  ImageInput image;
  std::vector<std::vector<std::string>> classes;  // [k][0] is the label shown; a built-in set may add synonyms
  std::string label_set;                          // the built-in set's name, when one was chosen
  std::vector<std::string> templates;             // empty: the model's default
  bool multi_label = false;
  size_t top_k = 0;
  bool hf = false;   // Hugging Face inference form: answered as a bare [{"label", "score"}] list
  std::string head;  // "head": a few-shot head the server was started with (serve --head NAME=FILE); no labels then
};
ClassifyRequest parse_classify(const Body& body, const Limits& limits);

struct EmbedRequest {
  std::vector<std::string> texts;
  std::vector<ImageInput> images;
  bool normalize = false;
};
EmbedRequest parse_embed(const Body& body, const Limits& limits);

struct SearchTerm {
  float weight = 1;  // signed
  bool image = false;
  std::string text;
  ImageInput img;
};
struct SearchRequest {
  std::vector<SearchTerm> terms;
  size_t top_k = 10;
};
// "query" is rclip's syntax ("2:golden retriever + pool - fruit") with every term read as text: the server never
// opens paths named in a request.
SearchRequest parse_search(const Body& body, const Limits& limits);

// /v1/moderate: just the image.
ImageInput parse_image_only(const Body& body);

}  // namespace zeroshot::server

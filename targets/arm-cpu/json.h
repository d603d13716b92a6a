// A small JSON reader for the runner: the bundle's manifest.json, which edgeopt writes itself
// (UTF-8, no comments). Objects, arrays, strings (with escapes), numbers, true/false/null.
#pragma once

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace json {

struct Value {
  enum Kind { kNull, kBool, kNumber, kString, kArray, kObject } kind = kNull;
  bool flag = false;
  double number = 0.0;
  std::string text;
  std::vector<Value> items;
  std::map<std::string, Value> fields;

  const Value& operator[](const std::string& key) const {
    auto found = fields.find(key);
    if (kind != kObject || found == fields.end()) throw std::runtime_error("manifest.json: no key \"" + key + "\"");
    return found->second;
  }
};

class Parser {
 public:
  explicit Parser(const std::string& text) : text_(text) {}

  Value document() {
    Value value = parse();
    skip();
    if (at_ < text_.size()) fail("trailing characters");
    return value;
  }

 private:
  const std::string& text_;
  size_t at_ = 0;

  [[noreturn]] void fail(const std::string& what) {
    throw std::runtime_error("manifest.json: " + what + " at byte " + std::to_string(at_));
  }
  void skip() {
    while (at_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[at_]))) ++at_;
  }
  char peek() {
    skip();
    if (at_ >= text_.size()) fail("unexpected end");
    return text_[at_];
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++at_;
  }
  bool word(const char* literal) {
    size_t n = std::char_traits<char>::length(literal);
    if (text_.compare(at_, n, literal) != 0) return false;
    at_ += n;
    return true;
  }

  Value parse() {
    Value value;
    char c = peek();
    if (c == '{') {
      value.kind = Value::kObject;
      ++at_;
      if (peek() == '}') return ++at_, value;
      while (true) {
        std::string key = string();
        expect(':');
        value.fields[key] = parse();
        if (peek() == ',') { ++at_; continue; }
        expect('}');
        return value;
      }
    }
    if (c == '[') {
      value.kind = Value::kArray;
      ++at_;
      if (peek() == ']') return ++at_, value;
      while (true) {
        value.items.push_back(parse());
        if (peek() == ',') { ++at_; continue; }
        expect(']');
        return value;
      }
    }
    if (c == '"') {
      value.kind = Value::kString;
      value.text = string();
      return value;
    }
    if (word("true")) { value.kind = Value::kBool; value.flag = true; return value; }
    if (word("false")) { value.kind = Value::kBool; return value; }
    if (word("null")) return value;
    char* end = nullptr;
    value.number = std::strtod(text_.c_str() + at_, &end);
    if (end == text_.c_str() + at_) fail("unexpected character");
    at_ = static_cast<size_t>(end - text_.c_str());
    value.kind = Value::kNumber;
    return value;
  }

  std::string string() {
    expect('"');
    std::string out;
    while (at_ < text_.size() && text_[at_] != '"') {
      char c = text_[at_++];
      if (c != '\\') { out += c; continue; }
      char e = text_.at(at_++);
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'u': {  // the manifest's names are ASCII; other code points become UTF-8
          unsigned code = std::stoul(text_.substr(at_, 4), nullptr, 16);
          at_ += 4;
          if (code < 0x80) out += static_cast<char>(code);
          else if (code < 0x800) { out += static_cast<char>(0xC0 | (code >> 6)); out += static_cast<char>(0x80 | (code & 0x3F)); }
          else { out += static_cast<char>(0xE0 | (code >> 12)); out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
                 out += static_cast<char>(0x80 | (code & 0x3F)); }
          break;
        }
        default: out += e;
      }
    }
    expect('"');
    return out;
  }
};

inline Value parse_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw std::runtime_error("cannot read " + path);
  std::stringstream buffer;
  buffer << file.rdbuf();
  std::string text = buffer.str();
  return Parser(text).document();
}

}  // namespace json

// A small streaming JSON writer for the graph / options documents handed to the Python host.
//
// Output is what Python's json.loads accepts: strings are valid UTF-8 (a byte that is not part of a valid UTF-8
// sequence is written as \u00XX, i.e. read back as the Latin-1 character of that byte), float32 values are
// written with 9 significant digits (enough to round-trip any float32), and NaN / Infinity / -Infinity are
// written as those bare words, which Python's json module reads as float('nan') / float('inf').
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace tp::shim {

class JsonWriter {
 public:
  void begin_object() { open('{'); }
  void end_object() { close('}'); }
  void begin_array() { open('['); }
  void end_array() { close(']'); }

  // Object member name; the next call writes its value.
  void key(const std::string& k) {
    separator();
    write_string(k);
    out_ += ':';
    after_key_ = true;
  }

  void value(const std::string& s) {
    separator();
    write_string(s);
  }
  void value(const char* s) { value(std::string(s ? s : "")); }
  void value(int64_t v) {
    separator();
    out_ += std::to_string(v);
  }
  void value(int v) { value(static_cast<int64_t>(v)); }
  void value(uint32_t v) { value(static_cast<int64_t>(v)); }
  void value(bool v) {
    separator();
    out_ += v ? "true" : "false";
  }
  void value_float32(float v) {
    separator();
    if (std::isnan(v)) {
      out_ += "NaN";
    } else if (std::isinf(v)) {
      out_ += v > 0 ? "Infinity" : "-Infinity";
    } else {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(v));
      out_ += buf;
    }
  }
  void null() {
    separator();
    out_ += "null";
  }

  const std::string& str() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  void open(char c) {
    separator();
    out_ += c;
    first_.push_back(true);
  }
  void close(char c) {
    out_ += c;
    first_.pop_back();
  }
  void separator() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (!first_.empty()) {
      if (!first_.back()) out_ += ',';
      first_.back() = false;
    }
  }

  // Length of the valid UTF-8 sequence starting at s[i], or 0 when the byte does not start one.
  static size_t utf8_length(const std::string& s, size_t i) {
    const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
    unsigned char c = b(i);
    size_t n = 0;
    uint32_t min = 0;
    uint32_t cp = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      n = 2, min = 0x80, cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 3, min = 0x800, cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 4, min = 0x10000, cp = c & 0x07;
    } else {
      return 0;
    }
    if (i + n > s.size()) return 0;
    for (size_t k = 1; k < n; ++k) {
      if ((b(i + k) & 0xC0) != 0x80) return 0;
      cp = (cp << 6) | (b(i + k) & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
  }

  void write_string(const std::string& s) {
    out_ += '"';
    for (size_t i = 0; i < s.size();) {
      unsigned char c = static_cast<unsigned char>(s[i]);
      if (c == '"' || c == '\\') {
        out_ += '\\';
        out_ += static_cast<char>(c);
        ++i;
      } else if (c < 0x20 || c == 0x7F) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        out_ += buf;
        ++i;
      } else if (c < 0x80) {
        out_ += static_cast<char>(c);
        ++i;
      } else if (size_t n = utf8_length(s, i)) {
        out_.append(s, i, n);
        i += n;
      } else {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        out_ += buf;
        ++i;
      }
    }
    out_ += '"';
  }

  std::string out_;
  std::vector<bool> first_;
  bool after_key_ = false;
};

}  // namespace tp::shim

// .npy files (format 1.0/2.0, little-endian, C order) as the runner reads golden inputs and
// outputs: bool, int8/16/32/64, uint8/16/32/64, float16 (read only)/32/64.
#pragma once

#include <dlpack/dlpack.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace npy {

struct Array {
  std::string descr;  // numpy's dtype string, e.g. "<f4", "|i1"
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;

  size_t element_bytes() const { return static_cast<size_t>(std::stoi(descr.substr(2))); }
  size_t row_bytes() const {
    size_t bytes = element_bytes();
    for (size_t i = 1; i < shape.size(); ++i) bytes *= static_cast<size_t>(shape[i]);
    return bytes;
  }
};

inline Array load(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw std::runtime_error("cannot read " + path);
  char magic[8];
  file.read(magic, 8);
  if (std::memcmp(magic, "\x93NUMPY", 6) != 0) throw std::runtime_error(path + ": not a .npy file");
  uint32_t header_len = 0;
  if (magic[6] == 1) {
    uint8_t bytes[2];
    file.read(reinterpret_cast<char*>(bytes), 2);
    header_len = bytes[0] | (bytes[1] << 8);
  } else {
    uint8_t bytes[4];
    file.read(reinterpret_cast<char*>(bytes), 4);
    header_len = bytes[0] | (bytes[1] << 8) | (bytes[2] << 16) | (static_cast<uint32_t>(bytes[3]) << 24);
  }
  std::string header(header_len, ' ');
  file.read(&header[0], header_len);
  auto field = [&](const std::string& key) {
    size_t at = header.find("'" + key + "'");
    if (at == std::string::npos) throw std::runtime_error(path + ": no " + key + " in the .npy header");
    return header.substr(header.find(':', at) + 1);
  };
  Array array;
  std::string descr = field("descr");
  array.descr = descr.substr(descr.find('\'') + 1, 3);
  if (field("fortran_order").find("True") < field("fortran_order").find(',')) {
    throw std::runtime_error(path + ": Fortran order is not supported");
  }
  std::string shape = field("shape");
  shape = shape.substr(shape.find('(') + 1, shape.find(')') - shape.find('(') - 1);
  std::stringstream dims(shape);
  std::string dim;
  size_t count = 1;
  while (std::getline(dims, dim, ',')) {
    if (dim.find_first_not_of(' ') == std::string::npos) continue;
    array.shape.push_back(std::stoll(dim));
    count *= static_cast<size_t>(array.shape.back());
  }
  array.data.resize(count * array.element_bytes());
  file.read(reinterpret_cast<char*>(array.data.data()), static_cast<std::streamsize>(array.data.size()));
  if (!file) throw std::runtime_error(path + ": truncated");
  return array;
}

inline void save(const std::string& path, const Array& array) {  // format 1.0, as numpy.save writes it
  std::string shape;
  for (int64_t dim : array.shape) shape += std::to_string(dim) + ",";
  if (array.shape.size() > 1) shape.pop_back();
  std::string header = "{'descr': '" + array.descr + "', 'fortran_order': False, 'shape': (" + shape + "), }";
  header.append(63 - (10 + header.size()) % 64, ' ');  // magic, version and length take 10 bytes; 64-byte aligned
  header += '\n';
  std::ofstream file(path, std::ios::binary);
  uint8_t length[2] = {static_cast<uint8_t>(header.size() & 0xFF), static_cast<uint8_t>(header.size() >> 8)};
  file.write("\x93NUMPY\x01\x00", 8);
  file.write(reinterpret_cast<const char*>(length), 2);
  file << header;
  file.write(reinterpret_cast<const char*>(array.data.data()), static_cast<std::streamsize>(array.data.size()));
  if (!file) throw std::runtime_error("cannot write " + path);
}

inline DLDataType dl_dtype(const std::string& descr) {
  uint8_t bits = static_cast<uint8_t>(8 * std::stoi(descr.substr(2)));
  switch (descr[1]) {
    case 'f': return DLDataType{kDLFloat, bits, 1};
    case 'i': return DLDataType{kDLInt, bits, 1};
    case 'u': return DLDataType{kDLUInt, bits, 1};
    case 'b': return DLDataType{kDLBool, 8, 1};
  }
  throw std::runtime_error("unsupported .npy dtype " + descr);
}

inline std::string descr_of(DLDataType dtype) {
  char kind = dtype.code == kDLFloat ? 'f' : dtype.code == kDLInt ? 'i' : dtype.code == kDLUInt ? 'u' : 'b';
  return std::string(dtype.bits == 8 ? "|" : "<") + kind + std::to_string(dtype.bits / 8);
}

inline void append_rows(Array& into, const Array& rows) {
  if (into.shape.empty()) { into = rows; return; }
  into.shape[0] += rows.shape.at(0);
  into.data.insert(into.data.end(), rows.data.begin(), rows.data.end());
}

inline double half_to_double(uint16_t h) {
  int exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF;
  double sign = (h & 0x8000) ? -1.0 : 1.0;
  if (exponent == 0) return sign * mantissa * 5.960464477539063e-08;
  if (exponent == 31) return mantissa ? NAN : sign * INFINITY;
  return sign * (1.0 + mantissa / 1024.0) * std::ldexp(1.0, exponent - 15);
}

inline std::vector<double> as_doubles(const Array& array) {
  size_t size = array.element_bytes(), count = array.data.size() / size;
  std::vector<double> out(count);
  const uint8_t* p = array.data.data();
  for (size_t i = 0; i < count; ++i, p += size) {
    switch (array.descr[1]) {
      case 'f':
        if (size == 2) { uint16_t v; std::memcpy(&v, p, 2); out[i] = half_to_double(v); }
        else if (size == 4) { float v; std::memcpy(&v, p, 4); out[i] = v; }
        else { double v; std::memcpy(&v, p, 8); out[i] = v; }
        break;
      case 'i':
        if (size == 1) out[i] = static_cast<int8_t>(*p);
        else if (size == 2) { int16_t v; std::memcpy(&v, p, 2); out[i] = v; }
        else if (size == 4) { int32_t v; std::memcpy(&v, p, 4); out[i] = v; }
        else { int64_t v; std::memcpy(&v, p, 8); out[i] = static_cast<double>(v); }
        break;
      case 'u':
        if (size == 1) out[i] = *p;
        else if (size == 2) { uint16_t v; std::memcpy(&v, p, 2); out[i] = v; }
        else if (size == 4) { uint32_t v; std::memcpy(&v, p, 4); out[i] = v; }
        else { uint64_t v; std::memcpy(&v, p, 8); out[i] = static_cast<double>(v); }
        break;
      default: out[i] = *p ? 1.0 : 0.0;
    }
  }
  return out;
}

}  // namespace npy

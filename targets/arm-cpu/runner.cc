// edgeopt's arm-cpu runner: runs a bundle's TVM library (model.so) on its golden inputs with
// the TVM runtime alone (libtvm_runtime.so, libtvm_ffi.so), no Python, and prints the same
// JSON report as the Python runners (targets/common/edgeopt_runner.py).
//
//   ./runner --bundle DIR [--runs N] [--threads N] [--json] [--save-outputs DIR]
//
// The model is loaded as TVM's Relax VM loads an exported library: the shared library as a
// module, its "vm_load_executable" gives the VM, "vm_initialization" (device type, device id,
// allocator) readies it, and "main" runs the model.
#include <dlpack/dlpack.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "json.h"
#include "npy.h"

namespace ffi = tvm::ffi;

namespace {

constexpr int kCpu = 1;           // kDLCPU
constexpr int kPooledAllocator = 2;  // tvm.runtime.vm.VirtualMachine.POOLED_ALLOCATOR

struct Options {
  std::string bundle = ".";
  int runs = 50;
  int threads = 1;
  bool json = false;
  std::string save_outputs;  // a directory: the outputs on the golden inputs, as .npy
};

Options parse_args(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--bundle") options.bundle = value();
    else if (arg == "--runs") options.runs = std::stoi(value());
    else if (arg == "--threads") options.threads = std::stoi(value());
    else if (arg == "--json") options.json = true;
    else if (arg == "--save-outputs") options.save_outputs = value();
    else throw std::runtime_error("unknown argument " + arg);
  }
  return options;
}

struct HostAlloc {  // 64-byte aligned host memory, as TVM's CPU kernels expect
  void AllocData(DLTensor* tensor) {
    size_t bytes = std::max<size_t>(ffi::GetDataSize(*tensor), 1);
    tensor->data = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (tensor->data == nullptr) throw std::bad_alloc();
  }
  void FreeData(DLTensor* tensor) { std::free(tensor->data); }
};

ffi::Tensor to_tensor(const npy::Array& array, size_t first, size_t count) {
  std::vector<int64_t> shape = array.shape;
  shape[0] = static_cast<int64_t>(count);
  ffi::Tensor tensor = ffi::Tensor::FromNDAlloc(HostAlloc(), ffi::ShapeView(shape.data(), shape.size()),
                                                npy::dl_dtype(array.descr), DLDevice{kDLCPU, 0});
  size_t row = array.row_bytes();
  std::memcpy(tensor.data_ptr(), array.data.data() + first * row, count * row);
  return tensor;
}

npy::Array from_tensor(const ffi::Tensor& tensor) {  // compact, on the host: what the VM returns on CPU
  npy::Array array;
  array.descr = npy::descr_of(tensor.dtype());
  array.shape.assign(tensor.shape().begin(), tensor.shape().end());
  size_t bytes = array.element_bytes();
  for (int64_t d : array.shape) bytes *= static_cast<size_t>(d);
  const uint8_t* data = static_cast<const uint8_t*>(tensor.data_ptr());
  array.data.assign(data, data + bytes);
  return array;
}

std::vector<ffi::Tensor> outputs_of(const ffi::Any& result) {
  if (auto tensor = result.as<ffi::Tensor>()) return {*tensor};
  std::vector<ffi::Tensor> outputs;
  for (const ffi::Any& item : result.cast<ffi::Array<ffi::Any>>()) outputs.push_back(item.cast<ffi::Tensor>());
  return outputs;
}

double percentile_ms(std::vector<double> seconds, double q) {
  if (seconds.empty()) return 0.0;
  std::sort(seconds.begin(), seconds.end());
  double rank = q / 100.0 * (seconds.size() - 1);  // numpy's linear interpolation
  size_t low = static_cast<size_t>(std::floor(rank)), high = static_cast<size_t>(std::ceil(rank));
  return 1000.0 * (seconds[low] + (seconds[high] - seconds[low]) * (rank - low));
}

std::string number(double value) {
  if (std::isinf(value)) return "Infinity";
  std::ostringstream out;
  out.precision(9);
  out << value;
  return out.str();
}

std::string quoted(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

int run(const Options& options) {
  json::Value manifest = json::parse_file(options.bundle + "/manifest.json");
  const json::Value& golden = manifest["golden"];
  std::vector<std::string> in_names, out_names;
  for (const json::Value& spec : manifest["inputs"].items) in_names.push_back(spec["name"].text);
  for (const json::Value& spec : manifest["outputs"].items) out_names.push_back(spec["name"].text);
  size_t batch = static_cast<size_t>(manifest["inputs"].items.at(0)["shape"].items.at(0).number);
  std::vector<npy::Array> inputs, expected;
  for (const json::Value& path : golden["inputs"].items) inputs.push_back(npy::load(options.bundle + "/" + path.text));
  for (const json::Value& path : golden["outputs"].items) expected.push_back(npy::load(options.bundle + "/" + path.text));

  setenv("TVM_NUM_THREADS", std::to_string(options.threads).c_str(), 1);
  ffi::Module library = ffi::Module::LoadFromFile(options.bundle + "/" + manifest["artefact"]["file"].text);
  ffi::Module vm = (*library->GetFunction("vm_load_executable"))().cast<ffi::Module>();
  (*vm->GetFunction("vm_initialization"))(kCpu, 0, kPooledAllocator);
  ffi::Function main_function = *vm->GetFunction("main");

  auto call = [&](size_t first) {
    std::vector<ffi::Any> args;
    for (const npy::Array& x : inputs) args.emplace_back(to_tensor(x, first, batch));
    std::vector<ffi::AnyView> views(args.begin(), args.end());
    ffi::Any result;
    main_function.CallPacked(views.data(), static_cast<int32_t>(views.size()), &result);
    return outputs_of(result);
  };

  size_t samples = static_cast<size_t>(inputs.at(0).shape.at(0));
  std::vector<npy::Array> actual(out_names.size());
  for (size_t first = 0; first + batch <= samples; first += batch) {
    std::vector<ffi::Tensor> got = call(first);
    for (size_t i = 0; i < got.size() && i < actual.size(); ++i) npy::append_rows(actual[i], from_tensor(got[i]));
  }
  if (!options.save_outputs.empty()) {
    for (size_t i = 0; i < actual.size(); ++i) {
      const std::string& golden_path = golden["outputs"].items.at(i).text;
      npy::save(options.save_outputs + "/" + golden_path.substr(golden_path.rfind('/') + 1), actual[i]);
    }
  }
  std::ostringstream rows;
  bool ok = true;
  for (size_t i = 0; i < out_names.size(); ++i) {
    const json::Value& tolerance = golden["tolerances"].items.at(i);
    double atol = tolerance["atol"].number, rtol = tolerance["rtol"].number;
    bool same_shape = actual[i].shape == expected[i].shape;
    double worst = same_shape ? 0.0 : INFINITY;
    bool row_ok = same_shape;
    if (same_shape) {
      std::vector<double> got = npy::as_doubles(actual[i]), want = npy::as_doubles(expected[i]);
      for (size_t k = 0; k < got.size(); ++k) {
        double error = std::fabs(got[k] - want[k]);
        worst = std::max(worst, error);
        if (error > atol + rtol * std::fabs(want[k])) row_ok = false;
      }
    }
    ok = ok && row_ok;
    rows << (i ? ", " : "") << "{\"name\": " << quoted(out_names[i]) << ", \"max_abs_error\": " << number(worst)
         << ", \"atol\": " << number(atol) << ", \"rtol\": " << number(rtol) << ", \"ok\": " << (row_ok ? "true" : "false")
         << "}";
  }

  call(0);
  std::vector<double> times;
  for (int r = 0; r < options.runs; ++r) {
    auto start = std::chrono::steady_clock::now();
    call(0);
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  struct utsname machine {};
  uname(&machine);
  std::ostringstream report;
  report << "{\"ok\": " << (ok ? "true" : "false") << ", \"outputs\": [" << rows.str() << "], \"golden_samples\": "
         << samples << ", \"latency_ms\": {\"p50\": " << number(percentile_ms(times, 50)) << ", \"p90\": "
         << number(percentile_ms(times, 90)) << ", \"runs\": " << options.runs << "}, \"threads\": " << options.threads
         << ", \"peak_rss_mib\": " << number(usage.ru_maxrss / 1024.0) << ", \"runtime\": \"tvm\", \"machine\": "
         << quoted(machine.machine) << "}";
  if (!options.json) {
    std::cout << (ok ? "outputs match the golden outputs" : "outputs DIFFER from the golden outputs") << "; latency p50 "
              << percentile_ms(times, 50) << " ms over " << options.runs << " runs" << std::endl;
  }
  std::cout << report.str() << std::endl;
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse_args(argc, argv));
  } catch (const std::exception& error) {
    std::cerr << "runner: " << error.what() << std::endl;
    return 2;
  }
}

// Bindings of the noise engine ops (ChaCha20 keystream, discrete Laplace, the fused
// epsilon-IdentityDP op): argument checks, then dispatch to csrc/cpu or csrc/cuda.
#include <pybind11/pybind11.h>

#include <cstring>
#include <string>

#include "bindings.h"
#include "ops.h"
#include "tensor_arg.h"

namespace py = pybind11;
using idp::Device;
using idp::TensorArg;

namespace {

idp::Key parse_key(const py::bytes& key) {
  std::string k = key;
  if (k.size() != 32) {
    throw py::value_error("key: expected 32 bytes, got " + std::to_string(k.size()));
  }
  idp::Key out;
  for (int i = 0; i < 8; ++i) {
    const auto* b = reinterpret_cast<const unsigned char*>(k.data() + 4 * i);
    out.w[i] = b[0] | (uint32_t(b[1]) << 8) | (uint32_t(b[2]) << 16) | (uint32_t(b[3]) << 24);
  }
  return out;
}

idp::NoiseTable table_arg(const py::object& table, int n_bits) {
  TensorArg t = idp::tensor_arg(table, "table", {idp::kUInt32, idp::kInt32}, 2);
  if (n_bits < 1 || n_bits > 62) throw py::value_error("n_bits must be in [1, 62], got " +
                                                       std::to_string(n_bits));
  idp::require_shape(t, 0, n_bits + 1, "n_bits + 1");
  if (t.shape[1] < 1 || t.shape[1] > 4096)
    throw py::value_error("table: words per row must be in [1, 4096]");
  return idp::NoiseTable{t.ptr<uint32_t>(), n_bits, static_cast<int>(t.shape[1])};
}

void chacha20_keystream(const py::bytes& key, const py::bytes& nonce, uint64_t counter,
                        const py::object& out_obj, uintptr_t cuda_stream) {
  const idp::Key k = parse_key(key);
  std::string n = nonce;
  if (n.size() != 12) throw py::value_error("nonce: expected 12 bytes, got " +
                                            std::to_string(n.size()));
  uint32_t nw[3];
  std::memcpy(nw, n.data(), 12);  // x86/ARM hosts are little-endian
  TensorArg out = idp::tensor_arg(out_obj, "out", {idp::kUInt8}, 1);
  const int64_t length = out.shape[0];
  const uint64_t n_blocks = (static_cast<uint64_t>(length) + 63) / 64;
  if (counter > 0xffffffffull || counter + n_blocks > 0x100000000ull) {
    throw py::value_error("counter + blocks must stay within the 32-bit block counter "
                          "(counter=" + std::to_string(counter) + ", blocks=" +
                          std::to_string(n_blocks) + ")");
  }
  idp::check_cuda_available(out);
  py::gil_scoped_release release;
  if (out.device == Device::CPU) {
    idp::cpu_chacha20_keystream(k, nw, static_cast<uint32_t>(counter), out.ptr<uint8_t>(), length);
  } else {
#ifdef IDP_WITH_CUDA
    idp::cuda_chacha20_keystream(k, nw, static_cast<uint32_t>(counter), out.ptr<uint8_t>(), length,
                                 reinterpret_cast<void*>(cuda_stream));
#endif
  }
  (void)cuda_stream;
}

void discrete_laplace(const py::bytes& key, uint64_t stream, uint64_t sample_offset,
                      const py::object& table_obj, int n_bits, const py::object& out_obj,
                      uintptr_t cuda_stream) {
  const idp::Key k = parse_key(key);
  TensorArg out = idp::tensor_arg(out_obj, "out", {idp::kInt64}, 1);
  TensorArg table = idp::tensor_arg(table_obj, "table", {idp::kUInt32, idp::kInt32}, 2);
  idp::require_same_device(out, table);
  const idp::NoiseTable t = table_arg(table_obj, n_bits);
  const int64_t n = out.shape[0];
  if (sample_offset + static_cast<uint64_t>(n) > 0x100000000ull) {
    throw py::value_error("sample_offset + n must be <= 2^32 (one nonce per sample)");
  }
  idp::check_cuda_available(out);
  py::gil_scoped_release release;
  if (out.device == Device::CPU) {
    idp::cpu_discrete_laplace(k, stream, static_cast<uint32_t>(sample_offset), t,
                              out.ptr<int64_t>(), n);
  } else {
#ifdef IDP_WITH_CUDA
    idp::cuda_discrete_laplace(k, stream, static_cast<uint32_t>(sample_offset), t,
                               out.ptr<int64_t>(), n, reinterpret_cast<void*>(cuda_stream));
#endif
  }
  (void)cuda_stream;
}

void identity_dp(const py::object& x_obj, const py::object& center_obj, const py::bytes& key,
                 uint64_t stream, const py::object& table_obj, int n_bits, int log2_granularity,
                 float clip, float output_norm, const py::object& out_obj,
                 const py::object& v_obj, uintptr_t cuda_stream) {
  idp::IdentityDPArgs a;
  a.key = parse_key(key);
  TensorArg x = idp::tensor_arg(x_obj, "x", {idp::kFloat32}, 2);
  TensorArg out = idp::tensor_arg(out_obj, "out", {idp::kFloat32}, 2);
  TensorArg v = idp::tensor_arg(v_obj, "v", {idp::kFloat32}, 2);
  TensorArg table = idp::tensor_arg(table_obj, "table", {idp::kUInt32, idp::kInt32}, 2);
  idp::require_shape(out, 0, x.shape[0], "x.shape[0]");
  idp::require_shape(out, 1, x.shape[1], "x.shape[1]");
  idp::require_shape(v, 0, x.shape[0], "x.shape[0]");
  idp::require_shape(v, 1, x.shape[1], "x.shape[1]");
  idp::require_same_device(x, out);
  idp::require_same_device(x, v);
  idp::require_same_device(x, table);
  a.center = nullptr;
  if (!center_obj.is_none()) {
    TensorArg c = idp::tensor_arg(center_obj, "center", {idp::kFloat32}, 1);
    idp::require_shape(c, 0, x.shape[1], "x.shape[1]");
    idp::require_same_device(x, c);
    a.center = c.ptr<float>();
  }
  if (x.shape[0] * x.shape[1] > 0xffffffffLL) {
    throw py::value_error("x: rows * dim must be < 2^32 (one nonce per coordinate)");
  }
  if (!(clip > 0.f) || !(output_norm > 0.f) || log2_granularity < -1000 ||
      log2_granularity > 1000) {
    throw py::value_error("clip and output_norm must be > 0 and log2_granularity in "
                          "[-1000, 1000]");
  }
  idp::check_cuda_available(x);
  a.table = table_arg(table_obj, n_bits);
  a.x = x.ptr<float>();
  a.rows = x.shape[0];
  a.dim = x.shape[1];
  a.stream = stream;
  a.log2_granularity = log2_granularity;
  a.clip = clip;
  a.output_norm = output_norm;
  a.out = out.ptr<float>();
  a.v = v.ptr<float>();
  py::gil_scoped_release release;
  if (x.device == Device::CPU) {
    idp::cpu_identity_dp(a);
  } else {
#ifdef IDP_WITH_CUDA
    idp::cuda_identity_dp(a, reinterpret_cast<void*>(cuda_stream));
#endif
  }
  (void)cuda_stream;
}

}  // namespace


namespace idp {

void bind_noise(py::module_& m) {
  m.def("chacha20_keystream", &chacha20_keystream, py::arg("key"), py::arg("nonce"),
        py::arg("counter"), py::arg("out"), py::arg("cuda_stream") = 0,
        "Fill uint8 `out` with ChaCha20 keystream bytes (RFC 8439) from block `counter`.");
  m.def("discrete_laplace", &discrete_laplace, py::arg("key"), py::arg("stream"),
        py::arg("sample_offset"), py::arg("table"), py::arg("n_bits"), py::arg("out"),
        py::arg("cuda_stream") = 0,
        "Fill int64 `out` with discrete Laplace integers for samples offset .. offset+n-1.");
  m.def("identity_dp", &identity_dp, py::arg("x"), py::arg("center"), py::arg("key"),
        py::arg("stream"), py::arg("table"), py::arg("n_bits"), py::arg("log2_granularity"),
        py::arg("clip"), py::arg("output_norm"), py::arg("out"), py::arg("v"),
        py::arg("cuda_stream") = 0, "The fused epsilon-IdentityDP op (see reference/identity_dp.py).");
}

}  // namespace idp

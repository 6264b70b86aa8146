// Bindings of the prior engine's fused ops (kernels/common/prior.h): modulated depthwise
// 3x3, modulated inverse Haar, and the pointwise conv's bias + noise + leaky-ReLU
// epilogue. NHWC float32 contiguous; outputs allocated by the caller.
#include <pybind11/pybind11.h>

#include <string>

#include "bindings.h"
#include "prior_ops.h"
#include "tensor_arg.h"

namespace py = pybind11;

namespace {

void* stream_ptr(uintptr_t s) { return reinterpret_cast<void*>(s); }

// x, out: (N, H, W, C); wmod: (N, 9, C)
void prior_dwconv3x3(const py::object& x_obj, const py::object& wmod_obj, const py::object& out_obj,
                     uintptr_t cuda_stream) {
  idp::TensorArg x = idp::tensor_arg(x_obj, "x", {idp::kFloat32}, 4);
  idp::TensorArg wm = idp::tensor_arg(wmod_obj, "wmod", {idp::kFloat32}, 3);
  idp::TensorArg out = idp::tensor_arg(out_obj, "out", {idp::kFloat32}, 4);
  idp::require_same_device(x, wm);
  idp::require_same_device(x, out);
  IdpPriorShape s{x.shape[0], x.shape[1], x.shape[2], x.shape[3]};
  idp::require_shape(wm, 0, s.n, "x's batch size");
  idp::require_shape(wm, 1, 9, "the 3x3 taps");
  idp::require_shape(wm, 2, s.c, "x's channels");
  for (int d = 0; d < 4; ++d) idp::require_shape(out, d, x.shape[d], "x's shape");
  idp::check_cuda_available(x);
  py::gil_scoped_release release;
  if (x.device == idp::Device::CPU) {
    idp::cpu_prior_dwconv3x3(x.ptr<float>(), wm.ptr<float>(), s, out.ptr<float>());
  } else {
#ifdef IDP_WITH_CUDA
    idp::cuda_prior_dwconv3x3(x.ptr<float>(), wm.ptr<float>(), s, out.ptr<float>(), stream_ptr(cuda_stream));
#endif
  }
  (void)cuda_stream;
}

// x: (N, H, W, 4C), style: (N, 4C), out: (N, 2H, 2W, C)
void prior_haar(const py::object& x_obj, const py::object& style_obj, const py::object& out_obj,
                uintptr_t cuda_stream) {
  idp::TensorArg x = idp::tensor_arg(x_obj, "x", {idp::kFloat32}, 4);
  idp::TensorArg st = idp::tensor_arg(style_obj, "style", {idp::kFloat32}, 2);
  idp::TensorArg out = idp::tensor_arg(out_obj, "out", {idp::kFloat32}, 4);
  idp::require_same_device(x, st);
  idp::require_same_device(x, out);
  if (x.shape[3] % 4 != 0)
    throw py::value_error("x: the channel count must be a multiple of 4 (LL + 3 high bands), got " +
                          std::to_string(x.shape[3]));
  IdpPriorShape s{x.shape[0], x.shape[1], x.shape[2], x.shape[3] / 4};
  idp::require_shape(st, 0, s.n, "x's batch size");
  idp::require_shape(st, 1, x.shape[3], "x's channels");
  idp::require_shape(out, 0, s.n, "x's batch size");
  idp::require_shape(out, 1, 2 * s.h, "2 H");
  idp::require_shape(out, 2, 2 * s.w, "2 W");
  idp::require_shape(out, 3, s.c, "x's channels / 4");
  idp::check_cuda_available(x);
  py::gil_scoped_release release;
  if (x.device == idp::Device::CPU) {
    idp::cpu_prior_haar(x.ptr<float>(), st.ptr<float>(), s, out.ptr<float>());
  } else {
#ifdef IDP_WITH_CUDA
    idp::cuda_prior_haar(x.ptr<float>(), st.ptr<float>(), s, out.ptr<float>(), stream_ptr(cuda_stream));
#endif
  }
  (void)cuda_stream;
}

// y, out: (N, H, W, C) (out may be y); bias: (C,); noise: (H, W) or None
void prior_epilogue(const py::object& y_obj, const py::object& bias_obj, const py::object& noise_obj,
                    const py::object& out_obj, uintptr_t cuda_stream) {
  idp::TensorArg y = idp::tensor_arg(y_obj, "y", {idp::kFloat32}, 4);
  idp::TensorArg b = idp::tensor_arg(bias_obj, "bias", {idp::kFloat32}, 1);
  idp::TensorArg out = idp::tensor_arg(out_obj, "out", {idp::kFloat32}, 4);
  idp::require_same_device(y, b);
  idp::require_same_device(y, out);
  IdpPriorShape s{y.shape[0], y.shape[1], y.shape[2], y.shape[3]};
  idp::require_shape(b, 0, s.c, "y's channels");
  for (int d = 0; d < 4; ++d) idp::require_shape(out, d, y.shape[d], "y's shape");
  const float* noise = nullptr;
  if (!noise_obj.is_none()) {
    idp::TensorArg nz = idp::tensor_arg(noise_obj, "noise", {idp::kFloat32}, 2);
    idp::require_same_device(y, nz);
    idp::require_shape(nz, 0, s.h, "y's height");
    idp::require_shape(nz, 1, s.w, "y's width");
    noise = nz.ptr<float>();
  }
  idp::check_cuda_available(y);
  py::gil_scoped_release release;
  if (y.device == idp::Device::CPU) {
    idp::cpu_prior_epilogue(y.ptr<float>(), b.ptr<float>(), noise, s, out.ptr<float>());
  } else {
#ifdef IDP_WITH_CUDA
    idp::cuda_prior_epilogue(y.ptr<float>(), b.ptr<float>(), noise, s, out.ptr<float>(),
                             stream_ptr(cuda_stream));
#endif
  }
  (void)cuda_stream;
}

}  // namespace

namespace idp {

void bind_prior(py::module_& m) {
  m.def("prior_dwconv3x3", &prior_dwconv3x3, py::arg("x"), py::arg("wmod"), py::arg("out"),
        py::arg("cuda_stream") = 0, "out = depthwise3x3(x) with per-sample taps wmod (N, 9, C); NHWC.");
  m.def("prior_haar", &prior_haar, py::arg("x"), py::arg("style"), py::arg("out"),
        py::arg("cuda_stream") = 0, "out = inverse_haar(x * style); x (N,H,W,4C) -> (N,2H,2W,C).");
  m.def("prior_epilogue", &prior_epilogue, py::arg("y"), py::arg("bias"), py::arg("noise"),
        py::arg("out"), py::arg("cuda_stream") = 0, "out = lrelu_0.2((y + noise) + bias); NHWC.");
}

}  // namespace idp

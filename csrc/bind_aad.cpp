// Bindings of the AAD-layer engine ops: instance norm, blend + ReLU, bilinear x2 (+ add).
// Every array is float32, contiguous, in NHWC order (a channels-last NCHW tensor
// permuted to (N, H, W, C)); outputs are allocated by the Python caller.
#include <pybind11/pybind11.h>

#include <cmath>
#include <string>

#include "aad_ops.h"
#include "bindings.h"
#include "tensor_arg.h"

namespace py = pybind11;

namespace {

IdpAadShape nhwc_shape(const idp::TensorArg& t) {
  IdpAadShape s;
  s.n = t.shape[0]; s.h = t.shape[1]; s.w = t.shape[2]; s.c = t.shape[3];
  return s;
}

// a must have a's shape equal to (n, h, w, c) of ref.
void require_same_nhwc(const idp::TensorArg& a, const idp::TensorArg& ref) {
  idp::require_same_device(ref, a);
  const std::string what = ref.name + "'s shape " +
                           idp::shape_str(ref.shape.data(), static_cast<int>(ref.shape.size()));
  for (int d = 0; d < 4; ++d) idp::require_shape(a, d, ref.shape[d], what.c_str());
}

// h, out: (N, H, W, C) float32 NHWC contiguous.
void instance_norm(const py::object& h_obj, double eps, const py::object& out_obj,
                   uintptr_t cuda_stream) {
  idp::TensorArg h = idp::tensor_arg(h_obj, "h", {idp::kFloat32}, 4);
  idp::TensorArg out = idp::tensor_arg(out_obj, "out", {idp::kFloat32}, 4);
  require_same_nhwc(out, h);
  if (!std::isfinite(eps) || eps < 0.0)
    throw py::value_error("instance_norm: eps must be a finite number >= 0, got " +
                          std::to_string(eps));
  idp::check_cuda_available(h);
  const IdpAadShape s = nhwc_shape(h);
  py::gil_scoped_release release;
  if (h.device == idp::Device::CPU) {
    idp::cpu_instance_norm(h.ptr<float>(), s, static_cast<float>(eps), out.ptr<float>());
  } else {
#ifdef IDP_WITH_CUDA
    idp::cuda_instance_norm(h.ptr<float>(), s, static_cast<float>(eps), out.ptr<float>(),
                            reinterpret_cast<void*>(cuda_stream));
#endif
  }
  (void)cuda_stream;
}

// h_hat, gamma_att, beta_att, out: (N, H, W, C); gamma_id, beta_id: (N, C);
// mask_logits: (N, H, W); all float32 contiguous.
void aad_blend_relu(const py::object& h_obj, const py::object& ga_obj, const py::object& ba_obj,
                    const py::object& gi_obj, const py::object& bi_obj,
                    const py::object& logits_obj, bool relu, const py::object& out_obj,
                    uintptr_t cuda_stream) {
  idp::TensorArg h = idp::tensor_arg(h_obj, "h_hat", {idp::kFloat32}, 4);
  idp::TensorArg ga = idp::tensor_arg(ga_obj, "gamma_att", {idp::kFloat32}, 4);
  idp::TensorArg ba = idp::tensor_arg(ba_obj, "beta_att", {idp::kFloat32}, 4);
  idp::TensorArg gi = idp::tensor_arg(gi_obj, "gamma_id", {idp::kFloat32}, 2);
  idp::TensorArg bi = idp::tensor_arg(bi_obj, "beta_id", {idp::kFloat32}, 2);
  idp::TensorArg lg = idp::tensor_arg(logits_obj, "mask_logits", {idp::kFloat32}, 3);
  idp::TensorArg out = idp::tensor_arg(out_obj, "out", {idp::kFloat32}, 4);
  require_same_nhwc(ga, h);
  require_same_nhwc(ba, h);
  require_same_nhwc(out, h);
  for (const idp::TensorArg* t : {&gi, &bi}) {
    idp::require_same_device(h, *t);
    idp::require_shape(*t, 0, h.shape[0], "h_hat's batch size N");
    idp::require_shape(*t, 1, h.shape[3], "h_hat's channel count C");
  }
  idp::require_same_device(h, lg);
  idp::require_shape(lg, 0, h.shape[0], "h_hat's batch size N");
  idp::require_shape(lg, 1, h.shape[1], "h_hat's height H");
  idp::require_shape(lg, 2, h.shape[2], "h_hat's width W");
  idp::check_cuda_available(h);
  const IdpAadShape s = nhwc_shape(h);
  const int r = relu ? 1 : 0;
  py::gil_scoped_release release;
  if (h.device == idp::Device::CPU) {
    idp::cpu_aad_blend(h.ptr<float>(), ga.ptr<float>(), ba.ptr<float>(), gi.ptr<float>(),
                       bi.ptr<float>(), lg.ptr<float>(), s, r, out.ptr<float>());
  } else {
#ifdef IDP_WITH_CUDA
    idp::cuda_aad_blend(h.ptr<float>(), ga.ptr<float>(), ba.ptr<float>(), gi.ptr<float>(),
                        bi.ptr<float>(), lg.ptr<float>(), s, r, out.ptr<float>(),
                        reinterpret_cast<void*>(cuda_stream));
#endif
  }
  (void)cuda_stream;
}

// x: (N, H, W, C); residual: None or (N, 2H, 2W, C); out: (N, 2H, 2W, C); float32.
void upsample_bilinear2x(const py::object& x_obj, const py::object& res_obj,
                         const py::object& out_obj, uintptr_t cuda_stream) {
  idp::TensorArg x = idp::tensor_arg(x_obj, "x", {idp::kFloat32}, 4);
  idp::TensorArg out = idp::tensor_arg(out_obj, "out", {idp::kFloat32}, 4);
  idp::require_same_device(x, out);
  idp::require_shape(out, 0, x.shape[0], "x's batch size N");
  idp::require_shape(out, 1, 2 * x.shape[1], "2 * x's height");
  idp::require_shape(out, 2, 2 * x.shape[2], "2 * x's width");
  idp::require_shape(out, 3, x.shape[3], "x's channel count C");
  const float* res = nullptr;
  if (!res_obj.is_none()) {
    idp::TensorArg r = idp::tensor_arg(res_obj, "residual", {idp::kFloat32}, 4);
    require_same_nhwc(r, out);
    res = r.ptr<float>();
  }
  idp::check_cuda_available(x);
  const IdpAadShape s = nhwc_shape(x);
  py::gil_scoped_release release;
  if (x.device == idp::Device::CPU) {
    idp::cpu_upsample2x(x.ptr<float>(), res, s, out.ptr<float>());
  } else {
#ifdef IDP_WITH_CUDA
    idp::cuda_upsample2x(x.ptr<float>(), res, s, out.ptr<float>(),
                         reinterpret_cast<void*>(cuda_stream));
#endif
  }
  (void)cuda_stream;
}

}  // namespace

namespace idp {

void bind_aad(py::module_& m) {
  m.def("instance_norm", &instance_norm, py::arg("h"), py::arg("eps"), py::arg("out"),
        py::arg("cuda_stream") = 0,
        "out = (h - mean) / sqrt(var + eps) per (n, c) over (H, W), biased var; NHWC.");
  m.def("aad_blend_relu", &aad_blend_relu, py::arg("h_hat"), py::arg("gamma_att"),
        py::arg("beta_att"), py::arg("gamma_id"), py::arg("beta_id"), py::arg("mask_logits"),
        py::arg("relu"), py::arg("out"), py::arg("cuda_stream") = 0,
        "out = relu((1 - m) (ga h + ba) + m (gi h + bi)), m = sigmoid(mask_logits); NHWC.");
  m.def("upsample_bilinear2x", &upsample_bilinear2x, py::arg("x"), py::arg("residual"),
        py::arg("out"), py::arg("cuda_stream") = 0,
        "out = bilinear_x2(x) (align_corners=False) [+ residual]; NHWC.");
}

}  // namespace idp

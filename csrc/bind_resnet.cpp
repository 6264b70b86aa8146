// Bindings of the identity-encoder engine ops: the fused residual add + ReLU.
#include <pybind11/pybind11.h>

#include <algorithm>
#include <string>

#include "bindings.h"
#include "resnet_ops.h"
#include "tensor_arg.h"

namespace py = pybind11;

namespace {

// main: (N, Hm, Wm, Cm), shortcut: (N, Hs, Ws, Cs), out: (N, H, W, C), all NHWC float32
// contiguous; H = max(Hm, Hs'), W = max(Wm, Ws'), C = max(Cm, Cs), Hs' = Hs/2 if pooled.
void residual_add_relu(const py::object& main_obj, const py::object& shortcut_obj,
                       bool pool_shortcut, const py::object& out_obj, uintptr_t cuda_stream) {
  idp::TensorArg m = idp::tensor_arg(main_obj, "main", {idp::kFloat32}, 4);
  idp::TensorArg sc = idp::tensor_arg(shortcut_obj, "shortcut", {idp::kFloat32}, 4);
  idp::TensorArg out = idp::tensor_arg(out_obj, "out", {idp::kFloat32}, 4);
  idp::require_same_device(m, sc);
  idp::require_same_device(m, out);
  idp::require_shape(sc, 0, m.shape[0], "main.shape[0] (batch)");
  IdpResidualShape s;
  s.mh = m.shape[1]; s.mw = m.shape[2]; s.mc = m.shape[3];
  s.sh = sc.shape[1]; s.sw = sc.shape[2]; s.sc = sc.shape[3];
  s.pool = pool_shortcut ? 1 : 0;
  s.n = m.shape[0];
  s.h = std::max(s.mh, pool_shortcut ? s.sh / 2 : s.sh);
  s.w = std::max(s.mw, pool_shortcut ? s.sw / 2 : s.sw);
  s.c = std::max(s.mc, s.sc);
  idp::require_shape(out, 0, s.n, "the batch size");
  idp::require_shape(out, 1, s.h, "max(main H, shortcut H)");
  idp::require_shape(out, 2, s.w, "max(main W, shortcut W)");
  idp::require_shape(out, 3, s.c, "max(main C, shortcut C)");
  idp::check_cuda_available(m);
  py::gil_scoped_release release;
  if (m.device == idp::Device::CPU) {
    idp::cpu_residual_add_relu(m.ptr<float>(), sc.ptr<float>(), s, out.ptr<float>());
  } else {
#ifdef IDP_WITH_CUDA
    idp::cuda_residual_add_relu(m.ptr<float>(), sc.ptr<float>(), s, out.ptr<float>(),
                                reinterpret_cast<void*>(cuda_stream));
#endif
  }
  (void)cuda_stream;
}

}  // namespace

namespace idp {

void bind_resnet(py::module_& m) {
  m.def("residual_add_relu", &residual_add_relu, py::arg("main"), py::arg("shortcut"),
        py::arg("pool_shortcut"), py::arg("out"), py::arg("cuda_stream") = 0,
        "out = relu(zero_fill(main) + zero_fill(pool ? avgpool2x2(shortcut) : shortcut)), NHWC.");
}

}  // namespace idp

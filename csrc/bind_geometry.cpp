// Bindings of the face-geometry ops: the batched affine warp (+ normalisation, NHWC).
#include <pybind11/pybind11.h>

#include <cmath>
#include <string>

#include "bindings.h"
#include "geometry_ops.h"
#include "tensor_arg.h"

namespace py = pybind11;

namespace {

// images (N, H, W, C) uint8/float32; matrices (N, 2, 3) float64; mean (C,) float64;
// out (N, out_h, out_w, C) float32.
void warp_affine(const py::object& images_obj, const py::object& matrices_obj,
                 const py::object& mean_obj, double scale, bool truncate,
                 const py::object& out_obj, uintptr_t cuda_stream) {
  idp::TensorArg img = idp::tensor_arg(images_obj, "images", {idp::kUInt8, idp::kFloat32}, 4);
  idp::TensorArg mat = idp::tensor_arg(matrices_obj, "matrices", {idp::kFloat64}, 3);
  idp::TensorArg mean = idp::tensor_arg(mean_obj, "mean", {idp::kFloat64}, 1);
  idp::TensorArg out = idp::tensor_arg(out_obj, "out", {idp::kFloat32}, 4);
  idp::require_same_device(img, mat);
  idp::require_same_device(img, mean);
  idp::require_same_device(img, out);
  idp::require_shape(mat, 0, img.shape[0], "images.shape[0]");
  idp::require_shape(mat, 1, 2, "2");
  idp::require_shape(mat, 2, 3, "3");
  idp::require_shape(mean, 0, img.shape[3], "images.shape[3] (channels)");
  idp::require_shape(out, 0, img.shape[0], "images.shape[0]");
  idp::require_shape(out, 3, img.shape[3], "images.shape[3] (channels)");
  if (img.shape[1] < 1 || img.shape[2] < 1 || img.shape[3] < 1)
    throw py::value_error("images: H, W and C must be >= 1");
  if (!std::isfinite(scale)) throw py::value_error("scale must be finite");
  idp::check_cuda_available(img);
  IdpWarpShape s;
  s.n = img.shape[0]; s.in_h = img.shape[1]; s.in_w = img.shape[2]; s.c = img.shape[3];
  s.out_h = out.shape[1]; s.out_w = out.shape[2];
  s.scale = scale; s.truncate = truncate ? 1 : 0;
  s.u8 = img.is(kDLUInt, 8) ? 1 : 0;
  py::gil_scoped_release release;
  if (img.device == idp::Device::CPU) {
    idp::cpu_warp_affine(img.data, mat.ptr<double>(), mean.ptr<double>(), s, out.ptr<float>());
  } else {
#ifdef IDP_WITH_CUDA
    idp::cuda_warp_affine(img.data, mat.ptr<double>(), mean.ptr<double>(), s, out.ptr<float>(),
                          reinterpret_cast<void*>(cuda_stream));
#endif
  }
  (void)cuda_stream;
}

}  // namespace

namespace idp {

void bind_geometry(py::module_& m) {
  m.def("warp_affine", &warp_affine, py::arg("images"), py::arg("matrices"), py::arg("mean"),
        py::arg("scale"), py::arg("truncate"), py::arg("out"), py::arg("cuda_stream") = 0,
        "out[n, r, c, :] = (bilinear(images[n], M_n [c, r, 1]) - mean) * scale, NHWC float32.");
}

}  // namespace idp

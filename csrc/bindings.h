// Registration functions of the op families bound in _C, and helpers they share.
#pragma once
#include <pybind11/pybind11.h>

#include "tensor_arg.h"

namespace idp {

void bind_noise(pybind11::module_& m);   // csrc/bind_noise.cpp
void bind_resnet(pybind11::module_& m);  // csrc/bind_resnet.cpp
void bind_prior(pybind11::module_& m);   // csrc/bind_prior.cpp
void bind_geometry(pybind11::module_& m);  // csrc/bind_geometry.cpp
void bind_aad(pybind11::module_& m);  // csrc/bind_aad.cpp

// Raises when a CUDA tensor reaches a _C built without CUDA.
inline void check_cuda_available(const TensorArg& t) {
#ifndef IDP_WITH_CUDA
  if (t.device == Device::CUDA) {
    throw pybind11::value_error(
        t.name + " is on a CUDA device, but identitydp_fast._C was built without CUDA "
        "(IDP_CUDA=OFF or no nvcc at build time); use the 'triton' or 'reference' backend, "
        "or rebuild with IDP_CUDA=ON");
  }
#else
  (void)t;
#endif
}

}  // namespace idp

// Package asm holds the kernels: the .s files and Go stubs that gen/kernels
// writes (one convolution micro-kernel per layer shape of the family and
// tier, max pool, average pool, classifier), a portable Go implementation
// of every op (what runs under the purego build tag and on other
// architectures), and CPU-feature dispatch (Tiers, Best, Conv(shape, tier)).
// Kernels know shapes only as generated constants; this package never
// imports resnet.
//
// Activations are NHWC Buffers with a zero halo; kernels read the halo as
// padding and write only the interior.
package asm

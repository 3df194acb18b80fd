// Package generated holds what go generate writes: one package per
// network (resnet18 … resnet152, their v1 variants, plain18/34 and the
// CIFAR-10 ResNets), each with a zero-allocation, straight-line Forward.
// Nothing here is written by hand.
package generated

// Package generated holds what go generate writes: one package per
// network (resnet18 … resnet152, their v1 variants, plain18/34 and the
// CIFAR-10 ResNets), each with its own kernels, a build with one statement
// per layer and a zero-allocation Forward that runs that layer schedule on
// a worker pool (engine.Schedule); the CIFAR nets, ResNet-18 and ResNet-50
// also carry int8 kernels. Nothing here is written by hand.
package generated

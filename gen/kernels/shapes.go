package kernels

import "github.com/resnetgen/resnetgen/resnet"

// convShape is what a specialised convolution kernel is specialised on.
type convShape = resnet.ConvShape

// shapes is every distinct convolution shape of the family, in a fixed
// order so the generator's output is deterministic.
func shapes() []convShape { return resnet.FamilyConvShapes() }

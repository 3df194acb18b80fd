package resnet

import (
	"math"
	"math/rand/v2"
)

// RandomWeights returns deterministic synthetic weights for net: He-normal
// convolutions and BatchNorm statistics that are far from the identity
// (gamma in [0.5, 1.5], beta and mean in [−0.5, 0.5], variance in [0.5, 2]),
// so that a test which forgets a BN term fails. Activations stay O(1) through
// deep networks. Benchmarks use it where no trained weights are at hand.
func RandomWeights(net *Network, seed uint64) *Weights {
	rng := rand.New(rand.NewPCG(seed, 0x5e5e7))
	uniform := func(lo, hi float64) float32 { return float32(lo + (hi-lo)*rng.Float64()) }
	w := NewWeights()
	for _, l := range net.Layers {
		switch l.Op {
		case OpConv:
			c := l.OutShape.C
			fanIn := float64(l.InShape.C * l.Kernel * l.Kernel)
			std := math.Sqrt(2 / fanIn)
			if l.Residual != NoValue {
				// Damp the last conv of a block so the residual sum does not
				// grow with depth (as zero-init-residual training would).
				std *= 0.2
			}
			k := make([]float32, c*l.InShape.C*l.Kernel*l.Kernel)
			for i := range k {
				k[i] = float32(rng.NormFloat64() * std)
			}
			w.Set(l.Weight, []int{c, l.InShape.C, l.Kernel, l.Kernel}, k)
			gamma, beta, mean, variance := make([]float32, c), make([]float32, c), make([]float32, c), make([]float32, c)
			for i := 0; i < c; i++ {
				gamma[i], beta[i] = uniform(0.5, 1.5), uniform(-0.5, 0.5)
				mean[i], variance[i] = uniform(-0.5, 0.5), uniform(0.5, 2)
			}
			w.Set(l.BN+".weight", []int{c}, gamma)
			w.Set(l.BN+".bias", []int{c}, beta)
			w.Set(l.BN+".running_mean", []int{c}, mean)
			w.Set(l.BN+".running_var", []int{c}, variance)
		case OpFC:
			in, out := l.InShape.C, l.OutShape.C
			std := 1 / math.Sqrt(float64(in))
			k, b := make([]float32, out*in), make([]float32, out)
			for i := range k {
				k[i] = float32(rng.NormFloat64() * std)
			}
			for i := range b {
				b[i] = uniform(-0.1, 0.1)
			}
			w.Set(l.Weight, []int{out, in}, k)
			w.Set(l.Bias, []int{out}, b)
		}
	}
	return w
}

// RandomInput returns a deterministic CHW image with values in [−2, 2], the
// range of normalised pixels.
func RandomInput(net *Network, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 0x1a9e))
	x := make([]float32, net.Input().Len())
	for i := range x {
		x[i] = float32(4*rng.Float64() - 2)
	}
	return x
}

package bench

import (
	"github.com/resnetgen/resnetgen/asm"
	"github.com/resnetgen/resnetgen/generated/all"
	"github.com/resnetgen/resnetgen/resnet"
)

// Job is one kernel to measure.
type Job struct {
	Name string
	Run  func(Options) KernelResult
}

// FamilyInt8Kernels lists every distinct int8 kernel of the generated
// family packages that carry them, on the int8 tier t (VNNI, AVX2 or the
// portable one).
func FamilyInt8Kernels(t asm.Tier) ([]Job, error) {
	var jobs []Job
	seen := map[string]bool{}
	for _, info := range all.Networks {
		if !info.Kernels.HasInt8() {
			continue
		}
		net, err := info.Network()
		if err != nil {
			return nil, err
		}
		for _, s := range net.ConvShapes() {
			if s.InC%4 != 0 {
				continue
			}
			k, err := info.Kernels.QConvKernel(s, t)
			if err != nil {
				return nil, err
			}
			if !seen[k.Name] {
				seen[k.Name] = true
				jobs = append(jobs, Job{k.Name, func(o Options) KernelResult { return QConv(k, o) }})
			}
		}
	}
	return jobs, nil
}

// FamilyKernels lists every distinct kernel of the generated family
// packages on tier t (each generated package carries the kernels of its own
// shapes; a kernel shared by several packages is listed once), in the
// order of the packages and their layers.
func FamilyKernels(t asm.Tier) ([]Job, error) {
	var jobs []Job
	seen := map[string]bool{}
	add := func(name string, run func(Options) KernelResult) {
		if !seen[name] {
			seen[name] = true
			jobs = append(jobs, Job{name, run})
		}
	}
	for _, info := range all.Networks {
		net, err := info.Network()
		if err != nil {
			return nil, err
		}
		ks := info.Kernels
		for _, s := range net.ConvShapes() {
			for _, v := range ks.ConvVariants(s, t) {
				k, err := ks.ConvVariant(s, t, v)
				if err != nil {
					return nil, err
				}
				add(k.Name, func(o Options) KernelResult { return Conv(k, o) })
			}
			if t == asm.Purego {
				k, err := ks.ConvKernel(s, t)
				if err != nil {
					return nil, err
				}
				add(k.Name, func(o Options) KernelResult { return Conv(k, o) })
			}
			for _, m := range ks.WinogradMs(s, t) {
				w, err := ks.WinogradM(s, t, m)
				if err != nil {
					return nil, err
				}
				add(w.Name, func(o Options) KernelResult { return Winograd(w, o) })
			}
		}
		for _, l := range net.Distinct(resnet.OpMaxPool, resnet.OpGlobalAvgPool, resnet.OpFC) {
			in := l.InShape
			switch l.Op {
			case resnet.OpMaxPool:
				k, err := ks.MaxPoolKernel(in.C, t)
				if err != nil {
					return nil, err
				}
				add(k.Name, func(o Options) KernelResult { return MaxPool(k, in.H, in.W, o) })
			case resnet.OpGlobalAvgPool:
				k, err := ks.AvgPoolKernel(in.C, t)
				if err != nil {
					return nil, err
				}
				add(k.Name, func(o Options) KernelResult { return AvgPool(k, in.H, in.W, o) })
			case resnet.OpFC:
				k, err := ks.FCKernel(in.C, l.OutShape.C, t)
				if err != nil {
					return nil, err
				}
				add(k.Name, func(o Options) KernelResult { return FC(k, o) })
			}
		}
	}
	return jobs, nil
}

package main

import (
	"fmt"
	"os"
	"time"

	"github.com/resnetgen/resnetgen/engine"
	"github.com/resnetgen/resnetgen/generated/all"
	"github.com/resnetgen/resnetgen/resnet"
	"github.com/resnetgen/resnetgen/resnet/cifar10"
	"github.com/resnetgen/resnetgen/resnet/weightfile"
)

func main() {
	arch, ck := os.Args[1], os.Args[2]
	f, err := weightfile.Open(ck)
	if err != nil { panic(err) }
	net := resnet.MustBuild(arch)
	w, err := f.Weights(net)
	if err != nil { panic(err) }
	images, err := cifar10.ReadDir("/work/shared/data/cifar10-test")
	if err != nil { panic(err) }
	n := net.Values[0].Len()
	var cal, ev []float32
	var evLabels []int
	buf := make([]float32, n)
	for i, img := range images {
		img.Normalize(buf)
		if i%10 == 0 { cal = append(cal, buf...) } else { ev = append(ev, buf...); evLabels = append(evLabels, int(img.Label)) }
	}
	info, _ := all.Lookup(arch)
	fold, _ := engine.Fold(net, w)
	m, err := engine.Interpret(fold, info.Kernels, engine.WithBatch(8))
	if err != nil { panic(err) }
	var ref []float32
	eval := func(name string, nt all.Net) {
		out := make([]float32, 10)
		correct, agree := 0, 0
		errSum := 0.0
		t := time.Now()
		var all []float32
		for i := range evLabels {
			if err := nt.ForwardBatch(ev[i*n:(i+1)*n], out); err != nil { panic(err) }
			all = append(all, out...)
			best := 0
			for j := range out { if out[j] > out[best] { best = j } }
			if best == evLabels[i] { correct++ }
			if ref != nil {
				r := ref[i*10:(i+1)*10]
				rb, sc, d := 0, 0.0, 0.0
				for j := range r { if r[j] > r[rb] { rb = j }; sc = max(sc, float64(abs(r[j]))); d = max(d, float64(abs(r[j]-out[j]))) }
				if rb == best { agree++ }
				errSum += d / sc
			}
		}
		if ref == nil { ref = all }
		fmt.Printf("%s %s: %d/%d = %.2f%% agree %d, mean max|Δlogit|/max|logit| %.4f (%v)\n", arch, name, correct, len(evLabels), 100*float64(correct)/float64(len(evLabels)), agree, errSum/float64(len(evLabels)), time.Since(t).Round(time.Millisecond))
	}
	fp, err := info.New(w, engine.WithWorkers(1))
	if err != nil { panic(err) }
	eval("fp32", fp)
	for _, meth := range []engine.ScaleMethod{engine.ScaleMSE, engine.ScaleMax, engine.ScalePercentile} {
		c, err := engine.Calibrate(m, fold, cal, n, 8, engine.CalibrateOptions{Method: meth})
		if err != nil { panic(err) }
		q, err := info.New(w, engine.WithWorkers(1), engine.WithInt8(c))
		if err != nil { panic(err) }
		eval("int8-"+string(meth), q)
	}
}

func abs(x float32) float32 { if x < 0 { return -x }; return x }

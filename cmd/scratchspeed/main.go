package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"time"

	"github.com/resnetgen/resnetgen/engine"
	"github.com/resnetgen/resnetgen/generated/all"
	"github.com/resnetgen/resnetgen/resnet"
)

func main() {
	arch := os.Args[1]
	info, _ := all.Lookup(arch)
	net, _ := info.Network()
	w := resnet.RandomWeights(net, 1)
	n := net.Values[0].Len()
	rng := rand.New(rand.NewPCG(1, 2))
	cal := make([]float32, 8*n)
	for i := range cal { cal[i] = float32(rng.NormFloat64()) }
	img := cal[:n]
	out := make([]float32, info.Classes)
	time1 := func(m all.Net) float64 {
		var ts []float64
		for r := 0; r < 15; r++ {
			t := time.Now()
			m.ForwardBatch(img, out)
			ts = append(ts, float64(time.Since(t).Microseconds())/1000)
		}
		sort.Float64s(ts)
		return ts[len(ts)/2]
	}
	fp, err := info.New(w, engine.WithWorkers(1))
	if err != nil { panic(err) }
	q, err := info.New(w, engine.WithWorkers(1), engine.WithInt8Calibrating(cal))
	if err != nil { panic(err) }
	for round := 0; round < 3; round++ {
		a, b := time1(fp), time1(q)
		fmt.Printf("%s 1T: fp32 %.2f ms, int8 %.2f ms, ratio %.3f\n", arch, a, b, b/a)
	}
	if len(os.Args) > 2 {
		q.Trace(func(l int, d time.Duration) { fmt.Printf("%-28s %-45s %8.3f\n", q.Layers()[l].Name, q.Layers()[l].Kernel, float64(d.Microseconds())/1000) })
		q.ForwardBatch(img, out)
	}
}

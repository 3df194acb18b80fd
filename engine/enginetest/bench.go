package enginetest

import (
	"runtime"
	"testing"
	"time"

	"github.com/resnetgen/resnetgen/asm"
	"github.com/resnetgen/resnetgen/asm/peak"
	"github.com/resnetgen/resnetgen/resnet"
)

// Benchmark times Forward of one image with random weights on the best tier
// and GOMAXPROCS workers, and reports GFLOP/s (2·MACs per second) and the
// fraction of the FMA peak the probe measures on as many threads, in the
// same run.
func Benchmark(b *testing.B, p Package) {
	net := network(b, p)
	m, err := p.New(resnet.RandomWeights(net, 1))
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	in, out := resnet.RandomInput(net, 2), make([]float32, net.Arch.Classes)
	p.Forward(m, in, out)
	pk := peak.GFLOPsThreads(asm.Best(), runtime.GOMAXPROCS(0), 50*time.Millisecond)
	b.ResetTimer()
	for range b.N {
		p.Forward(m, in, out)
	}
	gf := 2 * float64(net.MACs()) * float64(b.N) / b.Elapsed().Seconds() / 1e9
	b.ReportMetric(b.Elapsed().Seconds()*1e3/float64(b.N), "ms/image")
	b.ReportMetric(gf, "GFLOP/s")
	b.ReportMetric(gf/pk, "of-peak")
}

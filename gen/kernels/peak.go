package kernels

import (
	"fmt"

	"github.com/mmcloughlin/avo/attr"
	. "github.com/mmcloughlin/avo/operand"
	"github.com/mmcloughlin/avo/reg"
)

// emitPeak writes fmaPeak<Tier>(n): n trips of accs independent register
// FMAs, no memory traffic. accs exceeds FMA latency × FMA ports, so the loop
// runs at the machine's FMA throughput: the yardstick every kernel's speed
// is divided by. FLOPs = n · accs · 2 · Lanes.
func emitPeak(e emitter, accs int) {
	name := "fmaPeak" + tierIdent(e.t)
	e.Function(name)
	e.Attributes(attr.NOSPLIT)
	e.SignatureExpr("func(n uint64)")
	e.Doc(fmt.Sprintf("%s runs n trips of %d independent %d-lane FMAs (%d FLOPs a trip).", name, accs, e.t.Lanes, accs*2*e.t.Lanes))
	n := e.Load(e.Param("n"), e.GP64())
	a, b := e.vec(), e.vec()
	e.VXORPS(a, a, a)
	e.VXORPS(b, b, b)
	acc := make([]reg.VecVirtual, accs)
	for i := range acc {
		acc[i] = e.vec()
		e.VXORPS(acc[i], acc[i], acc[i])
	}
	e.TESTQ(n, n)
	e.JZ(LabelRef(name + "_done"))
	e.Label(name + "_loop")
	for i := range acc {
		e.VFMADD231PS(a, b, acc[i])
	}
	e.DECQ(n)
	e.JNZ(LabelRef(name + "_loop"))
	e.Label(name + "_done")
	e.VZEROUPPER()
	e.RET()
}

// emitPeakVNNI writes vnniPeak(n): n trips of 24 independent VPDPBUSD on
// zmm registers, no memory traffic, the int8 kernels' yardstick: OPs = n ·
// 24 · 64 multiply-adds · 2.
func emitPeakVNNI(e emitter) {
	const accs = 24
	name := "vnniPeak"
	e.Function(name)
	e.Attributes(attr.NOSPLIT)
	e.SignatureExpr("func(n uint64)")
	e.Doc(fmt.Sprintf("%s runs n trips of %d independent VPDPBUSD (%d int8 OPs a trip).", name, accs, accs*64*2))
	n := e.Load(e.Param("n"), e.GP64())
	a, b := e.ZMM(), e.ZMM()
	e.VXORPS(a, a, a)
	e.VXORPS(b, b, b)
	acc := make([]reg.VecVirtual, accs)
	for i := range acc {
		acc[i] = e.ZMM()
		e.VXORPS(acc[i], acc[i], acc[i])
	}
	e.TESTQ(n, n)
	e.JZ(LabelRef(name + "_done"))
	e.Label(name + "_loop")
	for i := range acc {
		e.VPDPBUSD(a, b, acc[i])
	}
	e.DECQ(n)
	e.JNZ(LabelRef(name + "_loop"))
	e.Label(name + "_done")
	e.VZEROUPPER()
	e.RET()
}

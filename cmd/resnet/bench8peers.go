package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"github.com/resnetgen/resnetgen/bench"
	"github.com/resnetgen/resnetgen/resnet"
)

// benchInt8Peers is bench -precision int8 -peers: our int8 beside
// PyTorch's (oneDNN held to AVX-512 VNNI, the same calibration images) and
// ONNX Runtime's on a QDQ export of our network with our scales, on
// torchvision's seeded ResNets (bench.RunInt8Peers): the logits compared
// on 32 seeded images, then, for -rounds > 0, batch-1 latencies alternated
// on each -threads count.
func benchInt8Peers(precision string, archs []string, threads, batches []int, rounds, runs int, asJSON bool, stdout, stderr io.Writer) error {
	if precision != "int8" {
		return fmt.Errorf("%w: -peers compares int8 networks: give -precision int8", errUsage)
	}
	if len(batches) != 1 || batches[0] != 1 {
		return fmt.Errorf("%w: -peers times batch 1 (PyTorch's session runs one image at a time)", errUsage)
	}
	if rounds < 0 || rounds > 0 && runs < 1 {
		return fmt.Errorf("%w: -peers takes -rounds ≥ 0 (0: the logits only) and -runs ≥ 1", errUsage)
	}
	if slices.Equal(archs, resnet.ImageNetDepths) { // no -arch: those of the five with int8 kernels
		archs = nil
		for _, a := range resnet.ImageNetDepths {
			if _, err := bench.Int8PeerInfo(a); err == nil {
				archs = append(archs, a)
			}
		}
	}
	for _, a := range archs {
		if _, err := bench.Int8PeerInfo(a); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
	}
	r, err := bench.RunInt8Peers(archs, threads, rounds, runs, bench.Int8PeersOptions{Log: stderr})
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	fmt.Fprintf(stdout, "int8 peers on torchvision's seeded ResNets, %s, load average %.1f at the start and %.1f at the end.\n", r.CPU, r.LoadBefore, r.LoadAfter)
	for _, n := range r.Numerics {
		fmt.Fprintf(stdout, "\n%s logits on %d seeded images (calibrated on %d others; PyTorch %s, ONEDNN_MAX_CPU_ISA=%s; ORT fused %d convs to QLinearConv). "+
			"Our float32 top-1 takes %d class(es); centred = less each class's mean over the images.\n",
			n.Arch, n.Images, n.Calibration, n.Torch, n.TorchISA, n.QLinearConv, n.Top1Classes)
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "a\tb\ttop-1 agree\tmax|Δ|/max|b|\tcorrelation\tcentred r\tcentred RMS Δ/b\tcentred top-1\t")
		for _, p := range n.Pairs {
			fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%.4f\t%.5f\t%.4f\t%.4f\t%d/%d\t\n", p.A, p.B, p.AgreeTop1, p.Images, p.MaxAbsRel, p.Correlation,
				p.CentredCorrelation, p.CentredRMSRel, p.CentredAgreeTop1, p.Images)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(r.Latency) == 0 {
		return nil
	}
	l0 := r.Latency[0]
	fmt.Fprintf(stdout, "\nbatch-1 latency, %d rounds of %d runs, each side once the others are idle; PyTorch int8 on %s (%v); "+
		"ORT on the QDQ model of our network at our scales. Ratios: medians over rounds of ours ÷ theirs.\n",
		l0.Rounds, l0.Runs, l0.Torch.ISA, l0.Torch.Int8Conv)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "arch\tthreads\tours int8 ms\tPyTorch int8 ms\tORT int8 ms\tours ÷ PyTorch\tours ÷ ORT\t")
	for _, l := range r.Latency {
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%.2f\t%.3f\t%.3f\t\n", l.Arch, l.Threads, l.OursMs, l.TorchMs, l.ORTMs,
			l.OverTorch, l.OverORT)
	}
	return tw.Flush()
}

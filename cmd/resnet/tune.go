package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/resnetgen/resnetgen/asm"
	"github.com/resnetgen/resnetgen/bench"
	"github.com/resnetgen/resnetgen/engine"
)

func runTune(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("tune", stderr)
	tiers := fs.String("tier", "", "comma-separated tiers to tune (default: every SIMD tier here)")
	rounds := fs.Int("rounds", 5, "interleaved direct/Winograd rounds per shape")
	margin := fs.Float64("margin", bench.DefaultTieMargin, "keep New's default rule unless a candidate's median is this fraction faster (0: pick the fastest)")
	dry := fs.Bool("n", false, "measure and print, but write nothing")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *rounds < 1 {
		return fmt.Errorf("%w: -rounds must be ≥ 1", errUsage)
	}
	if !(*margin >= 0 && *margin < 1) { // NaN fails too
		return fmt.Errorf("%w: -margin must be in [0, 1)", errUsage)
	}
	var run []asm.Tier
	if *tiers == "" {
		for _, t := range asm.Tiers() {
			if t != asm.Purego {
				run = append(run, t)
			}
		}
	} else {
		for _, name := range strings.Split(*tiers, ",") {
			t, err := pickTier(strings.TrimSpace(name))
			if err != nil {
				return err
			}
			run = append(run, t)
		}
	}
	path, err := engine.TuningPath()
	if err != nil {
		return err
	}
	tn, err := engine.ReadTuning(path)
	if err != nil {
		return err
	}
	cpu := engine.CPUModel()
	here := tn.Machines[cpu]
	if here == nil {
		here = map[string]engine.Measure{}
	}
	fmt.Fprintf(stdout, "%s: every candidate of each shape on one thread, %d interleaved rounds: direct (the generator's blocking),\n"+
		"direct/p8 (tiles of at most 8 pixels), winograd/M (F(M×M,3×3); GFLOP/s effective: the direct convolution's FLOPs ÷ time).\n"+
		"best: New's default rule unless a candidate's median is more than %.0f %% faster.\n", cpu, *rounds, 100**margin)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "shape\tdirect\tdirect/p8\twinograd/4\twinograd/2\tbest\t")
	for _, t := range run {
		fmt.Fprintf(stderr, "tuning %v\n", t)
		rs, err := bench.TuneFamily(t, bench.Options{Rounds: *rounds, Progress: stderr, TieMargin: *margin})
		if err != nil {
			return err
		}
		for _, r := range rs {
			here[r.Key] = r.Measure
			m := r.Measure
			cell := func(c string) string {
				if g, ok := m.GFLOPs[c]; ok {
					return fmt.Sprintf("%.1f", g)
				}
				return "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", r.Key, cell("direct"), cell("direct/p8"), cell("winograd/4"), cell("winograd/2"), m.Best)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if *dry {
		return nil
	}
	tn.Machines[cpu] = here
	if err := tn.Write(path); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (safe to delete; New then uses the default rule)\n", path)
	return nil
}

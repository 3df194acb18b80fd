package bench

import (
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/resnetgen/resnetgen/bench/ort"
	"github.com/resnetgen/resnetgen/engine"
	"github.com/resnetgen/resnetgen/generated/all"
	"github.com/resnetgen/resnetgen/resnet"
	"github.com/resnetgen/resnetgen/resnet/weightfile"
)

// VersusResult compares resnetgen with ONNX Runtime on one network, thread
// count and batch, from the same ONNX file in the same run; the JSON keys
// are a contract.
type VersusResult struct {
	Arch    string  `json:"arch"`
	Threads int     `json:"threads"`
	Batch   int     `json:"batch"`
	OursMs  float64 `json:"ours_ms"` // median latency of one ForwardBatch of Batch images
	ORTMs   float64 `json:"ort_ms"`  // median latency of one ORT run of Batch images
	// Ratio is the median over rounds of ours ÷ ORT latency (< 1: we are
	// faster); each round times both on the same number of runs.
	Ratio          float64 `json:"ratio"`
	OursImagesPerS float64 `json:"ours_images_per_s"`
	ORTImagesPerS  float64 `json:"ort_images_per_s"`
	Rounds         int     `json:"rounds"`
	// LogitsDiff is the largest |ours − ORT's| over the batch's logits,
	// relative to ORT's largest |logit|: at most LogitsTolerance, or
	// Versus fails.
	LogitsDiff float64 `json:"logits_diff"`
}

// LogitsTolerance bounds LogitsDiff: both sides compute in float32 from
// the same weights and input, in other orders (enginetest.Tolerance holds
// ours to the float64 reference by the same bound).
const LogitsTolerance = 1e-4

// VersusInput is the input both sides run, image after image: the same
// floats the ORT runner makes (bench/ort/runner.js), in the range of
// normalised pixels.
func VersusInput(n int) []float32 {
	in := make([]float32, n)
	for i := range in {
		in[i] = float32(float64((i*7919)%401)/100 - 2)
	}
	return in
}

// logitsDiff is max |ours − theirs| ÷ max |theirs|.
func logitsDiff(ours, theirs []float32) (float64, error) {
	if len(ours) != len(theirs) {
		return 0, fmt.Errorf("%d logits, ORT %d", len(ours), len(theirs))
	}
	worst, scale := 0.0, 0.0
	for i := range ours {
		worst = math.Max(worst, math.Abs(float64(ours[i])-float64(theirs[i])))
		scale = math.Max(scale, math.Abs(float64(theirs[i])))
	}
	if scale == 0 {
		return 0, fmt.Errorf("ORT's logits are all zero")
	}
	return worst / scale, nil
}

// VersusOptions sets what Versus compares and how long.
type VersusOptions struct {
	Archs   []string
	Threads []int
	Batches []int
	Conv    engine.Algorithm
	Rounds  int // alternations; ratios are medians over them
	Runs    int // inferences per round and side
	Python  string
	Log     io.Writer
}

// Versus runs ONNX Runtime and resnetgen alternately on torchvision's
// exports of each network (bench/ort), in rounds: ORT runs Runs
// inferences, then ours does, on the same batch size and thread count. Our
// side loads the same ONNX file through resnet/weightfile into the
// generated package, with the best tier.
func Versus(o VersusOptions) ([]VersusResult, error) {
	dir, err := ort.Dir()
	if err != nil {
		return nil, err
	}
	if err := ort.Setup(dir, o.Log); err != nil {
		return nil, err
	}
	models, err := ort.Export(dir, o.Python, o.Archs, o.Log)
	if err != nil {
		return nil, err
	}
	var results []VersusResult
	for _, arch := range o.Archs {
		info, err := all.Lookup(arch)
		if err != nil {
			return nil, err
		}
		net, err := info.Network()
		if err != nil {
			return nil, err
		}
		w, err := weightfile.Load(models[arch], net)
		if err != nil {
			return nil, err
		}
		for _, threads := range o.Threads {
			for _, batch := range o.Batches {
				r, err := versus(info, w, models[arch], dir, threads, batch, o)
				if err != nil {
					return nil, fmt.Errorf("%s, %d threads, batch %d: %w", arch, threads, batch, err)
				}
				results = append(results, r)
			}
		}
	}
	return results, nil
}

func versus(info all.Info, w *resnet.Weights, model, dir string, threads, batch int, o VersusOptions) (VersusResult, error) {
	m, err := info.New(w, engine.WithWorkers(threads), engine.WithBatch(batch), engine.WithConv(o.Conv))
	if err != nil {
		return VersusResult{}, err
	}
	defer m.Close()
	s, err := ort.Start(dir, model, threads, batch, info.InputHeight, info.InputWidth)
	if err != nil {
		return VersusResult{}, err
	}
	defer s.Close()
	in := VersusInput(batch * info.InputLen)
	out := make([]float32, batch*info.Classes)
	ours := func() (float64, error) {
		var t []float64
		for range o.Runs {
			start := time.Now()
			if err := m.ForwardBatch(in, out); err != nil {
				return 0, err
			}
			t = append(t, time.Since(start).Seconds())
		}
		return median(t), nil
	}
	if _, err := ours(); err != nil { // warm up
		return VersusResult{}, err
	}
	// The same logits first: a speed is only worth comparing for the same
	// answers.
	theirs, err := s.Logits()
	if err != nil {
		return VersusResult{}, err
	}
	diff, err := logitsDiff(out, theirs)
	if err != nil {
		return VersusResult{}, err
	}
	if diff > LogitsTolerance {
		return VersusResult{}, fmt.Errorf("our logits differ from ORT's by %.3g of its largest |logit| (at most %g)", diff, LogitsTolerance)
	}
	// Each side's round starts once the other side's process is idle: ORT's
	// workers spin on after a run, and on a machine with no spare core our
	// first runs would share theirs (see ort.WaitIdle). A process still
	// busy after a second is reported, and the round timed regardless.
	warnBusy := func(err error) {
		if err != nil && o.Log != nil {
			fmt.Fprintf(o.Log, "warning: the next round may share its cores: %v\n", err)
		}
	}
	var oursT, ortT, ratios []float64
	for r := 0; r < o.Rounds; r++ {
		warnBusy(ort.WaitIdle(os.Getpid(), time.Second))
		ts, err := s.Run(o.Runs)
		if err != nil {
			return VersusResult{}, err
		}
		a := median(ts)
		warnBusy(s.WaitIdle(time.Second))
		b, err := ours()
		if err != nil {
			return VersusResult{}, err
		}
		ortT, oursT, ratios = append(ortT, a), append(oursT, b), append(ratios, b/a)
		if o.Log != nil {
			fmt.Fprintf(o.Log, "%s %d threads batch %d round %d: ours %.2f ms, ORT %.2f ms, ratio %.3f\n", info.Arch, threads, batch, r+1, b*1e3, a*1e3, b/a)
		}
	}
	res := VersusResult{Arch: info.Arch, Threads: threads, Batch: batch, OursMs: median(oursT) * 1e3, ORTMs: median(ortT) * 1e3,
		Ratio: median(ratios), Rounds: o.Rounds, LogitsDiff: diff}
	res.OursImagesPerS = float64(batch) / median(oursT)
	res.ORTImagesPerS = float64(batch) / median(ortT)
	return res, nil
}

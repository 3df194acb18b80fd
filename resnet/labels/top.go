package labels

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// A Prediction is one of an image's most probable classes. The JSON keys
// are a contract: `resnet classify -json` and the commands resnetgen -main
// writes print them.
type Prediction struct {
	Class       int     `json:"class"`           // the logit's index
	Label       string  `json:"label,omitempty"` // its name; "" without names
	Probability float64 `json:"probability"`     // softmax of the logits, in float64
}

// Top returns the k most probable classes of logits, best first (equal
// logits in class order), with their probabilities under the softmax of
// all the logits, computed in float64 (exp(l − max) / Σ exp(l − max)), and
// their names from names (nil: no names; else one per logit). k must be in
// 1..len(logits), and the logits finite.
func Top(logits []float32, k int, names []string) ([]Prediction, error) {
	if k < 1 || k > len(logits) {
		return nil, fmt.Errorf("top %d of %d classes: want 1 to %d", k, len(logits), len(logits))
	}
	if names != nil && len(names) != len(logits) {
		return nil, fmt.Errorf("%d names for %d classes", len(names), len(logits))
	}
	hi := math.Inf(-1)
	for i, v := range logits {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("logit %d is %v", i, v)
		}
		hi = max(hi, float64(v))
	}
	sum := 0.0
	for _, v := range logits {
		sum += math.Exp(float64(v) - hi)
	}
	idx := make([]int, len(logits))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(logits[b], logits[a]) })
	out := make([]Prediction, k)
	for r, c := range idx[:k] {
		out[r] = Prediction{Class: c, Probability: math.Exp(float64(logits[c])-hi) / sum}
		if names != nil {
			out[r].Label = names[c]
		}
	}
	return out, nil
}

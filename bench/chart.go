package bench

import (
	"bytes"
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// colors of the charts: one per layer kind, and ours against ORT.
var (
	kindColor = map[string]color.Color{
		"conv":     color.RGBA{31, 119, 180, 255},
		"winograd": color.RGBA{44, 160, 44, 255},
		"fc":       color.RGBA{214, 39, 40, 255},
	}
	oursColor = color.RGBA{31, 119, 180, 255}
	ortColor  = color.RGBA{255, 127, 14, 255}
)

func render(p *plot.Plot, w, h vg.Length, format string) ([]byte, error) {
	wt, err := p.WriterTo(w, h, format)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if _, err := wt.WriteTo(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// LayerChart draws each layer's fraction of the FMA peak (the layers with
// multiply-adds: convolutions and the classifier), bars coloured by the
// kernel kind, and each layer's share of the network's time as a line.
// format is "svg" or "png".
func LayerChart(title string, rs []LayerResult, format string) ([]byte, error) {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = "fraction of the FMA peak (bars); share of the time (line)"
	p.X.Label.Text = "layer"
	total := 0.0
	for _, r := range rs {
		total += r.Ms
	}
	var names []string
	share := plotter.XYs{}
	byKind := map[string]plotter.Values{}
	var kinds []string
	n := 0
	for _, r := range rs {
		if r.MACs == 0 {
			continue
		}
		if _, ok := byKind[r.Kind]; !ok {
			kinds = append(kinds, r.Kind)
			byKind[r.Kind] = make(plotter.Values, 0)
		}
		names = append(names, r.Name)
		share = append(share, plotter.XY{X: float64(n), Y: r.Ms / total})
		n++
	}
	for _, k := range kinds {
		v := make(plotter.Values, n)
		i := 0
		for _, r := range rs {
			if r.MACs == 0 {
				continue
			}
			if r.Kind == k {
				v[i] = r.Efficiency
			}
			i++
		}
		bars, err := plotter.NewBarChart(v, vg.Points(4))
		if err != nil {
			return nil, err
		}
		bars.LineStyle.Width = 0
		c, ok := kindColor[k]
		if !ok {
			c = color.Gray{128}
		}
		bars.Color = c
		p.Add(bars)
		p.Legend.Add(k, bars)
	}
	line, err := plotter.NewLine(share)
	if err != nil {
		return nil, err
	}
	line.Color = color.Black
	p.Add(line)
	p.Legend.Add("share of the time", line)
	p.Legend.Top = true
	p.Y.Min, p.Y.Max = 0, 1.05
	ticks := make([]plot.Tick, 0, len(names))
	for i, name := range names {
		if i%4 == 0 || len(names) < 30 {
			ticks = append(ticks, plot.Tick{Value: float64(i), Label: name})
		}
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.X.Tick.Label.Rotation = 1.2
	p.X.Tick.Label.XAlign = draw.XRight
	p.X.Tick.Label.YAlign = draw.YCenter
	return render(p, vg.Points(float64(max(500, 9*n))), vg.Points(420), format)
}

// VersusChart draws each comparison's latency, ours beside ONNX Runtime's,
// labelled with the ratio.
func VersusChart(title string, rs []VersusResult, format string) ([]byte, error) {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = "ms per batch (median)"
	ours, theirs := make(plotter.Values, len(rs)), make(plotter.Values, len(rs))
	var names []string
	for i, r := range rs {
		ours[i], theirs[i] = r.OursMs, r.ORTMs
		names = append(names, fmt.Sprintf("%s %dT b%d\n%.2f×", r.Arch, r.Threads, r.Batch, r.Ratio))
	}
	w := vg.Points(14)
	a, err := plotter.NewBarChart(ours, w)
	if err != nil {
		return nil, err
	}
	a.Color, a.Offset, a.LineStyle.Width = oursColor, -w/2, 0
	b, err := plotter.NewBarChart(theirs, w)
	if err != nil {
		return nil, err
	}
	b.Color, b.Offset, b.LineStyle.Width = ortColor, w/2, 0
	p.Add(a, b)
	p.Legend.Add("resnetgen", a)
	p.Legend.Add("ONNX Runtime", b)
	p.Legend.Top, p.Legend.Left = true, true
	top := 0.0
	for _, r := range rs {
		top = max(top, r.OursMs, r.ORTMs)
	}
	p.Y.Min, p.Y.Max = 0, top*1.3 // room for the legend
	p.NominalX(names...)
	return render(p, vg.Points(float64(max(420, 80*len(rs)))), vg.Points(360), format)
}

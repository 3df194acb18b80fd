package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/resnetgen/resnetgen/resnet"
)

// flopsRow is one (depth, variant) of Table 1; the JSON keys are a contract.
type flopsRow struct {
	Arch       string  `json:"arch"`
	Variant    string  `json:"variant"`
	MACs       int64   `json:"macs"`
	Params     int64   `json:"params"`
	PaperFLOPs float64 `json:"paper_flops"`
}

func flopsTable() ([]flopsRow, error) {
	var rows []flopsRow
	for _, name := range resnet.ImageNetDepths {
		a, err := resnet.Lookup(name)
		if err != nil {
			return nil, err
		}
		for _, v := range []resnet.Variant{resnet.V1, resnet.V1_5} {
			a.Variant = v
			net, err := resnet.Build(a)
			if err != nil {
				return nil, err
			}
			rows = append(rows, flopsRow{name, v.String(), net.MACs(), net.Params(), a.PaperFLOPs})
		}
	}
	return rows, nil
}

func runFlops(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("flops", stderr)
	asJSON := fs.Bool("json", false, "print a JSON array of {arch, variant, macs, params, paper_flops}")
	if err := parse(fs, args); err != nil {
		return err
	}
	rows, err := flopsTable()
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	fmt.Fprintln(stdout, "Multiply-adds (the paper's \"FLOPs\") of conv + fc layers for one 224x224 image, x10^9.")
	fmt.Fprintln(stdout, "v1: stride on the bottleneck's first 1x1 (the paper); v1.5: on its 3x3 (torchvision).")
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "arch\tv1 MACs\tv1.5 MACs\tTable 1\tparams\t")
	for i := 0; i < len(rows); i += 2 {
		v1, v15 := rows[i], rows[i+1]
		fmt.Fprintf(tw, "%s\t%.3f\t%.3f\t%.1f\t%.3fM\t\n", v1.Arch, float64(v1.MACs)/1e9, float64(v15.MACs)/1e9,
			v1.PaperFLOPs/1e9, float64(v1.Params)/1e6)
	}
	return tw.Flush()
}

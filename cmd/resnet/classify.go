package main

import (
	"fmt"
	"io"

	"github.com/resnetgen/resnetgen/cli"
	"github.com/resnetgen/resnetgen/engine"
	"github.com/resnetgen/resnetgen/generated/all"
	"github.com/resnetgen/resnetgen/resnet"
	"github.com/resnetgen/resnetgen/resnet/imagenet"
	"github.com/resnetgen/resnetgen/resnet/labels"
	"github.com/resnetgen/resnetgen/resnet/preprocess"
	"github.com/resnetgen/resnetgen/serve"
)

// classified is one image's result in classify's JSON.
type classified = cli.Classified

func runClassify(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("classify", stderr)
	arch := fs.String("arch", "", "an ImageNet network: resnet18 … resnet152, resnet50v1 … resnet152v1 (default: the one the weights fit)")
	weights := fs.String("weights", "", "weights: PyTorch checkpoint, safetensors or ONNX")
	labelsFile := fs.String("labels", "", "file with the class names, one per line in class order (default: the ImageNet names, for 1000 classes)")
	flags := cli.AddClassifyFlags(fs)
	prec := addPrecisionFlags(fs)
	if err := cli.ParseArgs(fs, args); err != nil {
		return err
	}
	if _, err := prec.check(); err != nil {
		return err
	}
	images := fs.Args()
	if *weights == "" || len(images) == 0 {
		return cli.Usage("usage: resnet classify [-arch A] -weights W image.jpg [more…]")
	}
	if err := checkArch(*arch); err != nil {
		return err
	}
	if *arch != "" {
		if err := isImageNet(*arch); err != nil {
			return cli.Usage("%v", err)
		}
	}
	if err := flags.Check(); err != nil {
		return err
	}
	name, rnet, w, err := openWeights(*weights, *arch, stderr)
	if err != nil {
		return err
	}
	if err := isImageNet(name); err != nil {
		return fmt.Errorf("%s: %w", *weights, err)
	}
	info, err := all.Lookup(name)
	if err != nil {
		return err
	}
	extra, err := prec.options(info, rnet, stderr)
	if err != nil {
		return err
	}
	net := cli.Net{Name: name, Arch: name, InputH: info.InputHeight, InputW: info.InputWidth, Classes: info.Classes, Images: serve.ImageNet,
		New: func(opts ...engine.Option) (serve.Network, error) { return info.New(w, append(opts, extra...)...) }}
	switch {
	case *labelsFile != "":
		if net.Labels, err = labels.ReadFile(*labelsFile, info.Classes); err != nil {
			return err
		}
	case info.Classes == len(imagenet.Classes):
		net.Labels = imagenet.Classes
	}
	return cli.Classify("resnet classify", net, images, flags, stdout, stderr)
}

// isImageNet refuses a network that does not take 224x224 images.
func isImageNet(arch string) error {
	a, err := resnet.Lookup(arch)
	if err != nil {
		return err
	}
	if a.InputH != preprocess.CropSize || a.InputW != preprocess.CropSize {
		return fmt.Errorf("%s takes %dx%d images; classify runs ImageNet networks (%dx%d)",
			arch, a.InputH, a.InputW, preprocess.CropSize, preprocess.CropSize)
	}
	return nil
}

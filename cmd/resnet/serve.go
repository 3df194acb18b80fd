package main

import (
	"io"
	"strings"

	"github.com/resnetgen/resnetgen/cli"
	"github.com/resnetgen/resnetgen/engine"
	"github.com/resnetgen/resnetgen/generated/all"
	"github.com/resnetgen/resnetgen/resnet/cifar10"
	"github.com/resnetgen/resnetgen/resnet/imagenet"
	"github.com/resnetgen/resnetgen/resnet/labels"
	"github.com/resnetgen/resnetgen/resnet/preprocess"
	"github.com/resnetgen/resnetgen/serve"
)

func runServe(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	arch := fs.String("arch", "", "network, e.g. resnet50 or cifar-resnet20 (default: the one the weights fit)")
	weights := fs.String("weights", "", "weights: PyTorch checkpoint, safetensors or ONNX, or a directory holding one")
	labelsFile := fs.String("labels", "", "file with the class names, one per line (default: ImageNet's for 1000 classes, CIFAR-10's for the CIFAR nets)")
	flags := cli.AddServeFlags(fs, "the architecture's, e.g. resnet50")
	prec := addPrecisionFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if _, err := prec.check(); err != nil {
		return err
	}
	if *weights == "" {
		return cli.Usage("-weights is required")
	}
	if err := checkArch(*arch); err != nil {
		return err
	}
	return cli.Serve("resnet serve", flags, func() (cli.Net, error) { return servedNet(*weights, *arch, *labelsFile, stderr, &prec) }, stderr)
}

// servedModel is servedNet for package serve, as `resnet serve` makes it.
func servedModel(weights, arch, name, labelsFile string, workers int, conv engine.Algorithm, stderr io.Writer) (serve.Spec, error) {
	net, err := servedNet(weights, arch, labelsFile, stderr, nil)
	if err != nil {
		return serve.Spec{}, err
	}
	if name != "" {
		net.Name = name
	}
	return net.Spec(workers, conv), nil
}

// servedNet opens the weights and describes the network they fit (or
// arch): named by its architecture, its class names, and image files for
// the networks that take 224x224 inputs; in int8 where prec says so (nil:
// float32).
func servedNet(weights, arch, labelsFile string, stderr io.Writer, prec *precisionFlags) (cli.Net, error) {
	err := checkArch(arch)
	if err != nil {
		return cli.Net{}, err
	}
	if weights, err = cli.WeightsInDir(weights); err != nil {
		return cli.Net{}, err
	}
	archName, rnet, w, err := openWeights(weights, arch, stderr)
	if err != nil {
		return cli.Net{}, err
	}
	info, err := all.Lookup(archName)
	if err != nil {
		return cli.Net{}, err
	}
	var extra []engine.Option
	if prec != nil {
		if extra, err = prec.options(info, rnet, stderr); err != nil {
			return cli.Net{}, err
		}
	}
	net := cli.Net{Name: archName, Arch: archName, InputH: info.InputHeight, InputW: info.InputWidth, Classes: info.Classes,
		New: func(opts ...engine.Option) (serve.Network, error) { return info.New(w, append(opts, extra...)...) }}
	switch {
	case labelsFile != "":
		if net.Labels, err = labels.ReadFile(labelsFile, info.Classes); err != nil {
			return cli.Net{}, err
		}
	case info.Classes == len(imagenet.Classes):
		net.Labels = imagenet.Classes
	case strings.HasPrefix(archName, "cifar-") && info.Classes == cifar10.Classes:
		net.Labels = cifar10.ClassNames[:]
	}
	// Image files are accepted where torchvision's eval transform fits:
	// networks that take 224x224 images.
	if info.InputHeight == preprocess.CropSize && info.InputWidth == preprocess.CropSize {
		net.Images = serve.ImageNet
	}
	return net, nil
}

package gen

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/mod/modfile"

	"github.com/resnetgen/resnetgen/engine"
	"github.com/resnetgen/resnetgen/gen/graph"
	"github.com/resnetgen/resnetgen/resnet"
	"github.com/resnetgen/resnetgen/resnet/labels"
)

// isCIFAR reports whether net is of the CIFAR family (3x3 stem, 32×32
// images as they are).
func isCIFAR(net *resnet.Network) bool { return strings.HasPrefix(net.Arch.Name, "cifar-") }

// images sets the transform and the class names of spec from o: the
// network's defaults, changed by o.Resize, o.Mean, o.Std and o.Labels.
func images(o Options, spec *graph.Spec) error {
	t := engine.DefaultTransform(spec.Net)
	if o.Resize != nil {
		t.Resize = *o.Resize
	}
	if o.Mean != nil {
		t.Mean = *o.Mean
	}
	if o.Std != nil {
		t.Std = *o.Std
	}
	if err := t.Validate(); err != nil {
		return usage("%s", strings.TrimPrefix(err.Error(), "preprocess: "))
	}
	spec.Transform = t
	classes := spec.Net.Arch.Classes
	switch {
	case o.Labels != "":
		names, err := labels.ReadFile(o.Labels, classes)
		if err != nil {
			return fmt.Errorf("-labels %w", err)
		}
		spec.Labels, spec.LabelsSource = names, filepath.Base(o.Labels)
	case classes == graph.LabelsFuncs["ImageNet"] && !isCIFAR(spec.Net):
		spec.LabelsFunc = "ImageNet"
	case classes == graph.LabelsFuncs["CIFAR10"] && isCIFAR(spec.Net):
		spec.LabelsFunc = "CIFAR10"
	}
	return nil
}

// labelsSaid says where spec's class names come from, for the progress.
func labelsSaid(spec graph.Spec) string {
	switch {
	case spec.LabelsFunc != "":
		return spec.LabelsFunc + "'s"
	case spec.Labels != nil:
		return fmt.Sprintf("%d from %s", len(spec.Labels), spec.LabelsSource)
	}
	return "none (give them with -labels)"
}

// command describes the command o.Main asks for: the package's import path
// and the command's place, both from the module holding o.Dir.
func command(o Options, pkg string) (*graph.Command, error) {
	pkgDir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	mainDir, err := filepath.Abs(o.Main)
	if err != nil {
		return nil, err
	}
	if mainDir == pkgDir {
		return nil, usage("-main %s is the package's own directory: the command is package main, so it needs a directory of its own (e.g. -main cmd/%s)", o.Main, pkg)
	}
	root, modPath, goVersion, err := moduleOf(pkgDir)
	if err != nil {
		return nil, err
	}
	rel, err := filepath.Rel(root, mainDir)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return nil, usage("-main %s is outside the package's module (%s): the command imports the package, so it belongs in that module", o.Main, root)
	}
	pkgRel, err := filepath.Rel(root, pkgDir)
	if err != nil {
		return nil, err
	}
	if goVersion == "" {
		goVersion = strings.TrimPrefix(runtime.Version(), "go")
	}
	return &graph.Command{Pkg: pkg, Import: path.Join(modPath, filepath.ToSlash(pkgRel)), Dir: filepath.ToSlash(rel),
		GoVersion: goVersion, Command: o.Command}, nil
}

// moduleOf finds the go.mod of the module dir is in: its directory, the
// module path and the go version it names.
func moduleOf(dir string) (root, modPath, goVersion string, err error) {
	for d := dir; ; d = filepath.Dir(d) {
		data, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if errors.Is(err, os.ErrNotExist) {
			if filepath.Dir(d) == d {
				return "", "", "", usage("-main needs the package inside a Go module: no go.mod in %s or above it", dir)
			}
			continue
		}
		if err != nil {
			return "", "", "", err
		}
		f, err := modfile.ParseLax(filepath.Join(d, "go.mod"), data, nil)
		if err != nil {
			return "", "", "", err
		}
		if f.Module == nil || f.Module.Mod.Path == "" {
			return "", "", "", fmt.Errorf("%s names no module", filepath.Join(d, "go.mod"))
		}
		if f.Go != nil {
			goVersion = f.Go.Version
		}
		return d, f.Module.Mod.Path, goVersion, nil
	}
}

// checkMainDir refuses to write the command's files into dir if it holds
// Go code resnetgen did not write there (the command is package main: the
// directory is the command's alone), or a file of a name the command
// writes that is not resnetgen's.
func checkMainDir(dir string, files map[string][]byte) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		_, writes := files[name]
		if e.IsDir() || (!writes && !strings.HasSuffix(name, ".go")) {
			continue
		}
		p := filepath.Join(dir, name)
		ours, err := generatedByUs(p)
		if err != nil {
			return err
		}
		switch {
		case !writes:
			return fmt.Errorf("-main %s holds other Go code (%s): the command is package main and needs a directory of its own", dir, name)
		case !ours:
			return fmt.Errorf("%s exists and was not written by resnetgen: refusing to overwrite it (move it, or choose another -main)", p)
		}
	}
	return nil
}

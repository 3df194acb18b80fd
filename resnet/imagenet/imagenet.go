// Package imagenet holds the names of the 1000 ImageNet-1k (ILSVRC 2012)
// classes in the order of the classifiers' outputs, as torchvision names them.
//
// classes.txt is torchvision's list (torchvision.models._meta.
// _IMAGENET_CATEGORIES, torchvision 0.14.1 as Debian packages it in
// python3-torchvision; BSD-3-Clause, © Facebook, Inc. and its affiliates —
// see LICENSE.torchvision). Regenerate it with
//
//	/usr/bin/python3 -c 'from torchvision.models._meta import _IMAGENET_CATEGORIES as c; print("\n".join(c))' > classes.txt
//
// cmd/resnet's TestTorchvisionInterop checks it against the installed
// torchvision on every CI run.
package imagenet

import (
	_ "embed"
	"strings"
)

//go:embed classes.txt
var classesTxt string

// Classes are the class names: Classes[i] is the name of logit i.
var Classes = strings.Split(strings.TrimSuffix(classesTxt, "\n"), "\n")

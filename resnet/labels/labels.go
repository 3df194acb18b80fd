// Package labels reads class names: a labels file holds one name per line,
// in the order of the classifier's outputs (line i+1 names logit i). It is
// the one reader of resnet's -labels flag (classify, serve) and of
// resnetgen's; ImageNet and CIFAR10 are the names a generator defaults to.
// Top ranks a network's logits into named Predictions.
//
// The format, strictly: UTF-8 text (an initial byte-order mark is skipped);
// lines end in "\n" or "\r\n", and the last one may end in neither (a
// trailing newline is not a name); spaces and tabs around a name are not
// part of it. The number of lines must equal the network's classes, and
// every name must be non-empty, valid UTF-8 free of control characters
// (and of further byte-order marks) and different from every other. An
// error names the line.
package labels

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/resnetgen/resnetgen/resnet/cifar10"
	"github.com/resnetgen/resnetgen/resnet/imagenet"
)

// MaxFileBytes bounds a labels file (64 MiB; ImageNet-21k's names take 1).
const MaxFileBytes = 64 << 20

// ReadFile reads the labels file at path for a network of classes outputs.
// Errors start with the path, and for a bad line its number: "PATH:LINE: …".
func ReadFile(path string, classes int) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("%s: over %d bytes: not a labels file", path, MaxFileBytes)
	}
	names, bad := parse(data)
	if err := checkCount(len(names), classes, bad); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if bad != nil {
		return nil, fmt.Errorf("%s:%d: %s", path, bad.line, bad.msg)
	}
	return names, nil
}

// Parse reads a labels file's contents for a network of classes outputs.
// Errors for a bad line start "line LINE: …".
func Parse(data []byte, classes int) ([]string, error) {
	names, bad := parse(data)
	if err := checkCount(len(names), classes, bad); err != nil {
		return nil, err
	}
	if bad != nil {
		return nil, fmt.Errorf("line %d: %s", bad.line, bad.msg)
	}
	return names, nil
}

// Check holds names (names[i] naming logit i) to the rules of a labels
// file: as many as classes; none empty, padded with white space, invalid
// UTF-8 or holding a control character or byte-order mark; no two alike. Errors start
// "class I: …" (I from 0).
func Check(names []string, classes int) error {
	if err := checkCount(len(names), classes, nil); err != nil {
		return err
	}
	seen := make(map[string]int, len(names))
	for i, n := range names {
		msg := checkName(n, i, seen, "class %d")
		if msg == "" && n != strings.Trim(n, " \t") {
			msg = fmt.Sprintf("%q begins or ends with white space", n)
		}
		if msg != "" {
			return fmt.Errorf("class %d: %s", i, msg)
		}
	}
	return nil
}

// ImageNet returns the 1000 ImageNet-1k class names in torchvision's order
// (resnet/imagenet), a copy the caller may keep.
func ImageNet() []string { return append([]string(nil), imagenet.Classes...) }

// CIFAR10 returns the 10 CIFAR-10 class names in the dataset's order
// (resnet/cifar10), a copy the caller may keep.
func CIFAR10() []string { return append([]string(nil), cifar10.ClassNames[:]...) }

// problem is the first bad line of a file.
type problem struct {
	line int
	msg  string
}

// parse splits a file into names, one a line, and finds its first bad line.
func parse(data []byte) (names []string, bad *problem) {
	data = bytes.TrimPrefix(data, []byte("\uFEFF"))
	if len(data) == 0 {
		return nil, nil
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	seen := make(map[string]int, len(lines))
	names = make([]string, len(lines))
	for i, l := range lines {
		names[i] = strings.Trim(strings.TrimSuffix(l, "\r"), " \t")
		if bad == nil {
			if msg := checkName(names[i], i+1, seen, "on line %d"); msg != "" {
				bad = &problem{i + 1, msg}
			}
		}
	}
	return names, bad
}

// checkCount reports a count other than the classes, with the first bad
// line if there is one: a stray blank line is the usual reason for one
// name too many.
func checkCount(n, classes int, bad *problem) error {
	if n == classes {
		return nil
	}
	err := fmt.Errorf("%d labels, want %d (the network's classes)", n, classes)
	if bad != nil {
		err = fmt.Errorf("%v; line %d: %s", err, bad.line, bad.msg)
	}
	return err
}

// checkName says what is wrong with the name at position pos ("" if
// nothing), and records it in seen; sameAs formats the position of the
// name it repeats.
func checkName(name string, pos int, seen map[string]int, sameAs string) string {
	switch {
	case name == "":
		return "empty name"
	case !utf8.ValidString(name):
		return fmt.Sprintf("not UTF-8: %q", name)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return fmt.Sprintf("control character in %q", name)
	case strings.ContainsRune(name, '\uFEFF'):
		return fmt.Sprintf("byte-order mark in %q", name)
	}
	if first, dup := seen[name]; dup {
		return fmt.Sprintf("%q again, as "+sameAs, name, first)
	}
	seen[name] = pos
	return ""
}

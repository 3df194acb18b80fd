// Package cli is what the command lines share: `resnet` (cmd/resnet) and the
// command resnetgen -main writes for a generated package. Both dispatch
// subcommands the same way (Run), serve a network with the same flags and
// lifecycle (Serve: REST and gRPC, dynamic batching, metrics, a graceful
// stop on SIGTERM) and classify image files the same way (Classify), so the
// two never drift. Main is a generated package's whole command.
//
// A command's errors go to standard error and make the exit status
// non-zero: 2 for bad usage (ErrUsage), 1 for everything else.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/resnetgen/resnetgen/engine"
)

// ErrUsage marks errors caused by how a command was called: Run reports
// them with exit status 2.
var ErrUsage = errors.New("usage")

// Usage returns an error marked ErrUsage.
func Usage(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrUsage}, args...)...)
}

// A Command is one subcommand of a program.
type Command struct {
	Name, Summary string
	Run           func(args []string, stdout, stderr io.Writer) error
}

// Run runs the subcommand args[0] of prog with the rest of args and returns
// the exit status: 0, 1 for an error, 2 for bad usage (ErrUsage, a flag
// error, -h, an unknown or missing command).
func Run(prog string, commands []Command, args []string, stdout, stderr io.Writer) int {
	usage := func() {
		fmt.Fprintf(stderr, "usage: %s <command> [flags]\n\ncommands:\n", prog)
		width := 0
		for _, c := range commands {
			width = max(width, len(c.Name))
		}
		for _, c := range commands {
			fmt.Fprintf(stderr, "  %-*s %s\n", width, c.Name, c.Summary)
		}
		fmt.Fprintf(stderr, "\nrun '%s <command> -h' for a command's flags\n", prog)
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		usage()
		return 2
	}
	for _, c := range commands {
		if c.Name != args[0] {
			continue
		}
		err := c.Run(args[1:], stdout, stderr)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 2
		case errors.Is(err, ErrUsage):
			fmt.Fprintf(stderr, "%s %s: %v\n", prog, c.Name, err)
			return 2
		}
		fmt.Fprintf(stderr, "%s %s: %v\n", prog, c.Name, err)
		return 1
	}
	fmt.Fprintf(stderr, "%s: unknown command %q\n", prog, args[0])
	usage()
	return 2
}

// NewFlags returns a flag set named name ("resnet serve") that reports
// errors instead of exiting.
func NewFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// Parse parses flags and refuses stray arguments.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := ParseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return Usage("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// ParseArgs parses flags, leaving the arguments after them in fs.Args.
func ParseArgs(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return Usage("%v", err)
	}
	return nil
}

// ParseConv reads a -conv flag: auto, direct or winograd.
func ParseConv(s string) (engine.Algorithm, error) {
	for _, a := range []engine.Algorithm{engine.Auto, engine.Direct, engine.Winograd} {
		if a.String() == s {
			return a, nil
		}
	}
	return 0, Usage("-conv %q: want auto, direct or winograd", s)
}

// WeightsInDir is path, or, when path is a directory, the one file in it
// (hidden files aside): the layout KServe's storage initializer leaves in
// /mnt/models, whatever the file's name.
func WeightsInDir(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil || !st.IsDir() {
		return path, nil // opening it reports a missing file
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return "", err
	}
	var files []string
	for _, e := range entries {
		if !e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			files = append(files, e.Name())
		}
	}
	if len(files) != 1 {
		return "", fmt.Errorf("-weights %s is a directory with %d files %q; it must hold one weight file, or name the file", path, len(files), files)
	}
	return filepath.Join(path, files[0]), nil
}

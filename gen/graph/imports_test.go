package graph

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// servingCode is what a generated package must not link: serving (our
// server and command wiring, gRPC, Prometheus) is the generated command's
// business, and the generator's own code (Avo, Jennifer) never reaches a
// user's binary. (Protocol Buffers it does link: resnet/onnx reads ONNX
// models with them.)
var servingCode = []string{
	module + "/serve", module + "/cli", module + "/gen",
	"google.golang.org/grpc", "github.com/prometheus/",
	"github.com/mmcloughlin/avo", "github.com/dave/jennifer",
}

// forbiddenDeps lists the packages of servingCode that pkgs import,
// directly or not.
func forbiddenDeps(t *testing.T, pkgs ...string) []string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list", "-deps", "-f", "{{.ImportPath}}"}, pkgs...)...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	var bad []string
	for _, dep := range strings.Fields(string(out)) {
		for _, s := range servingCode {
			if dep == s || strings.HasPrefix(dep, strings.TrimSuffix(s, "/")+"/") {
				bad = append(bad, dep)
			}
		}
	}
	return bad
}

// The generated packages (and their registry) import no serving code,
// whatever the tags: Preprocess, Labels and Classify come from resnet/*.
// The check itself is held to a package that does import it.
func TestGeneratedPackagesImportNoServingCode(t *testing.T) {
	for _, env := range [][]string{nil, {"GOARCH=arm64"}, {"GOFLAGS=-tags=purego"}} {
		t.Setenv("GOARCH", "")
		t.Setenv("GOFLAGS", "")
		for _, e := range env {
			k, v, _ := strings.Cut(e, "=")
			t.Setenv(k, v)
		}
		assert.Empty(t, forbiddenDeps(t, module+"/generated/..."), "%v", env)
	}
	assert.Contains(t, forbiddenDeps(t, module+"/cli"), "google.golang.org/grpc", "the check finds serving code where it is")
}

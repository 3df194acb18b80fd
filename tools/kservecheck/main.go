// Command kservecheck validates Kubernetes manifests against CRDs on disk
// with sigs.k8s.io/kubectl-validate, which runs the Kubernetes API server's
// own decoding and validation (apiextensions-apiserver's structural schema,
// OpenAPI and CEL rules, ObjectMeta validation) without a cluster. Fields
// the schema does not declare are errors, as a server with strict field
// validation reports them.
//
//	kservecheck -crds DIR FILE.yaml…
//
// Unlike the kubectl-validate command, it reads schemas only from DIR and
// kubectl-validate's built-in Kubernetes schemas: it never looks for a
// cluster (kubeconfig or in-cluster service account) nor downloads schemas
// from GitHub, so it runs the same offline, in CI and in a pod. It prints
// one line a document and exits 1 if any is invalid, 2 on a usage error.
//
// It is a module of its own so that the Kubernetes libraries stay out of
// resnetgen's go.mod; docs/kserve_test.go builds and runs it.
package main

import (
	"flag"
	"fmt"
	"os"

	"sigs.k8s.io/kubectl-validate/pkg/cmd"
	"sigs.k8s.io/kubectl-validate/pkg/openapiclient"
	"sigs.k8s.io/kubectl-validate/pkg/utils"
	"sigs.k8s.io/kubectl-validate/pkg/validator"
	"sigs.k8s.io/yaml"
)

func main() {
	crds := flag.String("crds", "", "directory of CustomResourceDefinition YAML files")
	version := flag.String("k8s", "1.30", "Kubernetes version of the built-in schemas (1.23 … 1.30)")
	flag.Parse()
	if *crds == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: kservecheck -crds DIR [-k8s 1.30] FILE.yaml…")
		os.Exit(2)
	}
	if st, err := os.Stat(*crds); err != nil || !st.IsDir() {
		fmt.Fprintf(os.Stderr, "kservecheck: -crds %s: not a directory\n", *crds)
		os.Exit(2)
	}
	factory, err := validator.New(openapiclient.NewComposite(
		openapiclient.NewLocalCRDFiles(os.DirFS(*crds)),
		openapiclient.NewOverlay(openapiclient.HardcodedPatchLoader(*version), openapiclient.NewHardcodedBuiltins(*version)),
	))
	if err != nil {
		fmt.Fprintf(os.Stderr, "kservecheck: %v\n", err)
		os.Exit(2)
	}
	bad := false
	for _, path := range flag.Args() {
		data, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "kservecheck: %v\n", err)
			os.Exit(2)
		}
		docs, err := utils.SplitYamlDocuments(data)
		if err != nil {
			fmt.Printf("%s: INVALID: %v\n", path, err)
			bad = true
			continue
		}
		n := 0
		for _, doc := range docs {
			if utils.IsEmptyYamlDocument(doc) {
				continue
			}
			n++
			var head struct {
				Kind     string
				Metadata struct{ Name string }
			}
			_ = yaml.Unmarshal(doc, &head) // only to name it; validation reports bad YAML
			what := fmt.Sprintf("%s: document %d (%s %s)", path, n, head.Kind, head.Metadata.Name)
			if err := cmd.ValidateDocument(doc, factory); err != nil {
				fmt.Printf("%s: INVALID: %v\n", what, err)
				bad = true
			} else {
				fmt.Printf("%s: valid\n", what)
			}
		}
		if n == 0 {
			fmt.Printf("%s: INVALID: no documents\n", path)
			bad = true
		}
	}
	if bad {
		os.Exit(1)
	}
}

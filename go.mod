module github.com/resnetgen/resnetgen

go 1.26.0

require (
	github.com/dave/jennifer v1.7.1
	github.com/mmcloughlin/avo v0.6.0
	github.com/nlpodyssey/gopickle v0.2.0
	golang.org/x/sys v0.50.0
	google.golang.org/protobuf v1.36.12
)

require (
	golang.org/x/mod v0.42.0 // indirect
	golang.org/x/sync v0.24.0 // indirect
	golang.org/x/tools v0.52.0 // indirect
)

require (
	github.com/stretchr/testify v1.12.1
	go.yaml.in/yaml/v3 v3.0.5 // indirect
)

tool google.golang.org/protobuf/cmd/protoc-gen-go

module github.com/resnetgen/resnetgen

go 1.26

require github.com/nlpodyssey/gopickle v0.2.0

require (
	github.com/stretchr/testify v1.12.1
	go.yaml.in/yaml/v3 v3.0.5 // indirect
)

package generated

// One line regenerates every package here, each as resnetgen writes a
// user's, and the registry in all/.
//go:generate go run ../gen/family

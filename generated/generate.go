package generated

//go:generate go run ../gen/graph -root ..

package main

import (
	"fmt"
	"os"
)

// version is the tool's own version, shown by -h and the API.
const version = "0.1.0"

func main() {
	fmt.Fprintln(os.Stderr, "ollama-model-downloader: being built")
	os.Exit(2)
}

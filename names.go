package main

import "errors"

// modelName is a parsed Ollama model reference. Skeleton (issue 3).
type modelName struct{ Host, Namespace, Model, Tag, Digest string }

func parseModelName(s, defaultHost string) (modelName, error) {
	return modelName{}, errors.New("model names not written yet")
}

func (n modelName) String() string      { return n.Host + "/" + n.Namespace + "/" + n.Model + ":" + n.Tag }
func (n modelName) DisplayName() string { return n.Model + ":" + n.Tag }
func (n modelName) ZipName() string     { return n.Model + "-" + n.Tag + ".zip" }

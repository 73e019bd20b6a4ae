module ollama-model-downloader

go 1.26

package main

import "github.com/keyline/keyline/internal/handlers"

func main() { handlers.Main("console-authorizer") }

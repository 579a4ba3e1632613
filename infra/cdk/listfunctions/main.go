// Command listfunctions prints the deployment description's function names, one a line
// (scripts/build-functions.sh builds exactly these). It needs no CDK, so it builds fast.
package main

import (
	"fmt"

	"github.com/keyline/keyline/infra"
)

func main() {
	for _, f := range infra.Description().Functions {
		fmt.Println(f.Name)
	}
}

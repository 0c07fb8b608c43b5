package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weir-broker/weir/internal/toolchain"
	"github.com/weir-broker/weir/plugins"
	"github.com/weir-broker/weir/sdk/abi"
	"github.com/weir-broker/weir/sdk/client"
)

// newTransformDeployCmd is `weir transform deploy [NAME] --pipeline P ...`.
func newTransformDeployCmd() *cobra.Command {
	var (
		dir, wasmFile, pipeline string
		spec                    pipelineSpec
	)
	cmd := &cobra.Command{
		Use:   "deploy [NAME] --pipeline P --input T --output T [--config k=v]... [--dir DIR | --wasm FILE]",
		Short: "Build the project, upload it as module NAME and create the pipeline, or upgrade it when it exists",
		Long: `Builds the transform project in --dir (default .) as ` + "`weir transform build`" + ` does
(or takes --wasm FILE as it is), checks it as the broker will (its ABI version
against this weir's), uploads it as a new version of module NAME (default the
project's name; PUT /v1/modules/NAME), then:

  - if pipeline P does not exist, creates it with that version and the
    create flags (POST /v1/pipelines; --input and --output are required);
  - if it exists, upgrades it to that version at a batch boundary, keeping
    its position and state (PATCH /v1/pipelines/P, as weir pipeline upgrade);
    --config replaces its config when given, other create flags are ignored.

Prints what it did as JSON.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if pipeline == "" {
				return errors.New("--pipeline is required")
			}
			wasm, name, err := deployModule(cmd, dir, wasmFile)
			if err != nil {
				return err
			}
			if len(args) == 1 {
				name = args[0]
			}
			c := clientFor(cmd)
			mod, err := c.UploadModule(cmd.Context(), name, wasm)
			if err != nil {
				var ae *client.Error
				if errors.As(err, &ae) && strings.Contains(ae.Message, "abi version") {
					return fmt.Errorf("upload %s: %w (this weir and its SDK speak ABI %d: use a weir and SDK that match the broker's)", name, err, abi.Version)
				}
				return fmt.Errorf("upload %s: %w", name, err)
			}
			action, out, err := createOrUpgrade(cmd, c, pipeline, name, mod.Version, &spec)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), map[string]any{"module": name, "version": mod.Version, "size": len(wasm),
				"pipeline": pipeline, "action": action, "result": out})
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", ".", "the transform project to build")
	f.StringVar(&wasmFile, "wasm", "", "deploy this module file instead of building --dir")
	f.StringVar(&pipeline, "pipeline", "", "the pipeline to create or upgrade")
	spec.flags(f)
	return cmd
}

// deployModule builds the project in dir (or reads wasmFile), validates
// it with this weir's checks and returns it with the project's name.
func deployModule(cmd *cobra.Command, dir, wasmFile string) ([]byte, string, error) {
	name := ""
	if wasmFile == "" {
		p, err := toolchain.Open(dir)
		if err != nil {
			return nil, "", err
		}
		if wasmFile, err = buildProject(cmd, p, "", nil, false); err != nil {
			return nil, "", err
		}
		name = p.Name
	}
	wasm, err := os.ReadFile(wasmFile)
	if err != nil {
		return nil, "", err
	}
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(wasmFile), ".wasm")
	}
	h, err := plugins.New(plugins.Config{Isolation: plugins.IsolationInProcess})
	if err != nil {
		return nil, "", err
	}
	defer h.Close()
	if _, err := h.Validate(cmd.Context(), wasm); err != nil {
		return nil, "", fmt.Errorf("%s: %w", wasmFile, err)
	}
	return wasm, name, nil
}

// createOrUpgrade creates pipeline with module@version, or upgrades it
// when it exists. It returns "created" or "upgraded" and the API's answer.
func createOrUpgrade(cmd *cobra.Command, c *client.Client, pipeline, module string, version int, spec *pipelineSpec) (string, json.RawMessage, error) {
	ctx := cmd.Context()
	_, err := c.Pipeline(ctx, pipeline)
	switch {
	case err == nil:
		up := client.PipelineUpgrade{Module: module, Version: version}
		if len(spec.config) > 0 {
			cfg, err := parseConfig(spec.config)
			if err != nil {
				return "", nil, err
			}
			up.Config = cfg
		}
		out, err := c.UpgradePipeline(ctx, pipeline, up)
		if err != nil {
			return "", nil, fmt.Errorf("upgrade pipeline %s: %w", pipeline, err)
		}
		return "upgraded", out.Raw, nil
	case errors.Is(err, client.CodeNotFound) || errors.Is(err, client.CodePipelineNotFound):
		if len(spec.inputs) == 0 || len(spec.outputs) == 0 {
			return "", nil, fmt.Errorf("pipeline %s does not exist: --input and --output are needed to create it", pipeline)
		}
		spec.version = version
		cfg, err := spec.pipelineConfig(pipeline, module)
		if err != nil {
			return "", nil, err
		}
		out, err := c.CreatePipeline(ctx, cfg)
		if err != nil {
			return "", nil, fmt.Errorf("create pipeline %s: %w", pipeline, err)
		}
		return "created", out.Raw, nil
	}
	return "", nil, fmt.Errorf("look up pipeline %s: %w", pipeline, err)
}

#!/usr/bin/env bash
echo "placeholder: not written yet"; exit 1

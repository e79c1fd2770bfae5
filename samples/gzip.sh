#!/bin/sh
exec gzip -c

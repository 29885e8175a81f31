#include "textflag.h"

// func lines(from, to uintptr)
TEXT ·lines(SB), NOSPLIT|NOFRAME, $0-16
	MOVQ from+0(FP), AX
	MOVQ to+8(FP), BX
loop:
	CMPQ AX, BX
	JAE done
	PREFETCHT0 (AX)
	ADDQ $64, AX
	JMP loop
done:
	RET

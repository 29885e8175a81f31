#include "textflag.h"

// func lines(from, to uintptr)
TEXT ·lines(SB), NOSPLIT|NOFRAME, $0-16
	MOVD from+0(FP), R0
	MOVD to+8(FP), R1
loop:
	CMP R1, R0
	BHS done
	PRFM (R0), PLDL1KEEP
	ADD $64, R0
	B loop
done:
	RET
